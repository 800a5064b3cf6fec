"""The running statistics behind outlier signals: new outputs folded into each application's sketches.

Ingest never writes statistics (it is the hottest path, and a counter row per application
would serialise concurrent batches): this periodic job (``signal_statistics_refresh_task``,
every minute) reads the outputs received since the tenant's watermark, in batches, measures
each (``policies.signals.measures_of``, the function ingest uses), adds the measures to the
application's DDSketches and stores them as the next version. Ingest reads the newest
version through a per-process cache (``policies.selectors.application_statistics``) and each
decision stores the figures it read, so a refresh never changes a stored decision.

The watermark is the last output folded in, ``(received_at, id)``; the job stops
``SIGNAL_LAG`` short of now, so that a batch still committing is not skipped (a transaction
open longer than that is left out of the statistics, which are estimates anyway). A tenant's
first run starts ``SIGNAL_FIRST_RUN`` back, not at the beginning of its history. The rows of
the tenant are locked for the run, so two runs never fold the same outputs twice.
"""

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from hitl.tenancy import tenant_scope
from policies.models import ApplicationStatistics
from policies.signals import MEASURES, QuantileSketch, measures_of, sketches_decode, sketches_encode
from reviews.models import Output
from tenants.models import Tenant

SIGNAL_BATCH = 2000
SIGNAL_MAX_PER_RUN = 200_000
SIGNAL_LAG = timedelta(seconds=10)
SIGNAL_FIRST_RUN = timedelta(days=7)


def signal_statistics_refresh(
    *, tenant: Tenant, now: datetime | None = None, batch_size: int = SIGNAL_BATCH, max_rows: int = SIGNAL_MAX_PER_RUN
) -> int:
    """Fold the outputs received since the last run into their applications' statistics; how many."""
    now = now or timezone.now()
    cutoff = now - SIGNAL_LAG
    with transaction.atomic():
        locked = ApplicationStatistics.objects.for_tenant(tenant).select_for_update(no_key=True)
        stored = {row.application: row for row in locked}
        marks = [(row.through_received_at, row.through_id) for row in stored.values() if row.through_received_at]
        watermark = max(marks) if marks else None
        sketches: dict[str, dict[str, QuantileSketch]] = {}
        counts: dict[str, int] = defaultdict(int)
        folded = 0
        while folded < max_rows:
            candidates = Output.objects.for_tenant(tenant).filter(received_at__lt=cutoff)
            if watermark is None:
                candidates = candidates.filter(received_at__gte=now - SIGNAL_FIRST_RUN)
            else:
                at, last_id = watermark
                candidates = candidates.filter(Q(received_at__gt=at) | Q(received_at=at, id__gt=last_id))
            batch = list(
                candidates.order_by("received_at", "id").values_list(
                    "id", "received_at", "application", "output", "trace", "metadata"
                )[: min(batch_size, max_rows - folded)]
            )
            if not batch:
                break
            for _, _, application, output, trace, metadata in batch:
                measures = measures_of(output=output, trace=trace, metadata=metadata or {})
                if application not in sketches:
                    row = stored.get(application)
                    sketches[application] = {
                        **{name: QuantileSketch() for name in MEASURES},
                        **(sketches_decode(row.sketches) if row else {}),
                    }
                application_sketches = sketches[application]
                for name, value in measures.items():
                    application_sketches[name].add(value)
                counts[application] += 1
            watermark = (batch[-1][1], batch[-1][0])
            folded += len(batch)
        if not folded:
            return 0
        through_at, through_id = watermark
        created = []
        for application, count in counts.items():
            row = stored.get(application)
            encoded = sketches_encode(sketches[application])
            if row is None:
                created.append(
                    ApplicationStatistics(
                        tenant=tenant,
                        application=application,
                        version=1,
                        observations=count,
                        sketches=encoded,
                        through_received_at=through_at,
                        through_id=through_id,
                    )
                )
                continue
            row.version += 1
            row.observations += count
            row.sketches = encoded
            row.through_received_at, row.through_id = through_at, through_id
            row.save(
                update_fields=["version", "observations", "sketches", "through_received_at", "through_id", "updated_at"]
            )
        if created:
            # ignore_conflicts: a concurrent first run (embedded beats in several processes) stored them first
            ApplicationStatistics.objects.for_tenant(tenant).bulk_create(created, ignore_conflicts=True)
    return folded


def signal_statistics_refresh_all(*, now: datetime | None = None) -> int:
    """The scheduled job: every tenant in its own scope. Returns how many outputs it folded in."""
    total = 0
    for tenant in Tenant.objects.order_by("pk"):
        with tenant_scope(tenant):
            total += signal_statistics_refresh(tenant=tenant, now=now)
    return total
