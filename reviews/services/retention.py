"""Retention: blank the payloads of outputs older than the tenant's period, in bulk.

What is blanked: the output's ``input``, ``output``, ``trace`` and ``final_output``; its
reviews' corrections and comments; the escalation comment on its tasks; end users'
feedback comments; its judges' rationales; the bodies of its webhook deliveries. What stays: every identifier,
time, tier, policy version, draw, decision, score and digest (``content_hash``, and the
audit chain's own digests), so that the audit chain stays verifiable and the story of
an output can still be told, without its content. ``redacted_at`` says when.

One batch is one transaction of a fixed number of statements (pick the ids, then one
UPDATE per table), never a statement per output; the tenant's retention row is locked
for the batch, so that a legal hold placed meanwhile is seen by the next batch. The
tenant's watermark (``Retention.redacted_through``) keeps each run to what aged since
the last one.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from hitl.tenancy import tenant_scope
from policies.models import LegalHold, Retention
from policies.retention import held_outputs_q, legal_holds, retention_cutoff, retention_row_ensure
from reviews.models import Feedback, Judgement, Output, Review, ReviewTask, WebhookDelivery
from tenants.audit import SYSTEM, audit_record_batch
from tenants.models import Tenant

RETENTION_BATCH = 1000
REDACTED_WEBHOOK_PAYLOAD = {"redacted": "retention"}


@dataclass(frozen=True)
class RetentionRun:
    tenant_id: int
    cutoff: datetime
    redacted: int
    batches: int


def _redact(tenant: Tenant, ids: list, now: datetime) -> None:
    """Blank the payloads of ``ids`` (outputs of ``tenant``): one UPDATE per table."""
    Output.objects.for_tenant(tenant).filter(pk__in=ids).update(
        input="",
        output="",
        trace=[],
        final_output=Case(When(final_output__isnull=True, then=Value(None)), default=Value("")),
        redacted_at=now,
    )
    Review.objects.for_tenant(tenant).filter(output_id__in=ids).update(corrected_output="", comment="")
    ReviewTask.objects.for_tenant(tenant).filter(output_id__in=ids).exclude(escalation_reason="").update(
        escalation_reason=""
    )
    Feedback.objects.for_tenant(tenant).filter(output_id__in=ids).exclude(comment="").update(comment="")
    # A judge's rationale may quote the output it judged; its result, score and cost stay.
    Judgement.objects.for_tenant(tenant).filter(output_id__in=ids).exclude(rationale="").update(rationale="")
    WebhookDelivery.objects.for_tenant(tenant).filter(output_id__in=ids).update(payload=REDACTED_WEBHOOK_PAYLOAD)


def _audit_redaction(tenant: Tenant, rows: list[tuple], *, days: int, cutoff: datetime) -> None:
    """The redaction's audit event: one per batch, committing (a Merkle root) to the digests of the
    outputs it redacted; those digests stay on the outputs, so the chain stays verifiable."""
    audit_record_batch(
        tenant=tenant,
        actor=SYSTEM,
        kind="output.redacted",
        object_type="output",
        digests=[(output_id, audit_digest or content_hash) for output_id, _, content_hash, audit_digest in rows],
        data={"retention_days": days, "cutoff": cutoff.isoformat()},
    )


def retention_apply(*, tenant: Tenant, now: datetime | None = None, batch_size: int = RETENTION_BATCH) -> RetentionRun:
    """Redact every output of ``tenant`` received before its cutoff that no active legal hold
    covers and that is not redacted yet. Idempotent: a second run finds nothing."""
    now = now or timezone.now()
    retention = retention_row_ensure(tenant=tenant)
    cutoff = retention_cutoff(days=retention.days, now=now)
    start = retention.redacted_through
    after = start
    redacted = batches = 0
    while True:
        with transaction.atomic():
            # The lock orders this batch with hold placements and releases (they lock the same row).
            locked = Retention.objects.for_tenant(tenant).select_for_update(no_key=True).get(pk=retention.pk)
            cutoff = retention_cutoff(days=locked.days, now=now)
            candidates = Output.objects.for_tenant(tenant).filter(received_at__lt=cutoff, redacted_at__isnull=True)
            if after is not None:
                candidates = candidates.filter(received_at__gte=after)
            holds = list(legal_holds(tenant=tenant, active=True))
            if holds:
                candidates = candidates.exclude(held_outputs_q(holds))
            rows = list(
                candidates.order_by("received_at", "pk").values_list(
                    "pk", "received_at", "content_hash", "audit_digest"
                )[:batch_size]
            )
            if not rows:
                # Move the watermark on, unless a hold was released during the run (what it
                # kept may lie behind the batches already done: the next run looks again).
                released = LegalHold.objects.for_tenant(tenant).filter(released_at__gte=now).exists()
                if not released and locked.redacted_through == start:
                    Retention.objects.for_tenant(tenant).filter(pk=locked.pk).update(redacted_through=cutoff)
                break
            _redact(tenant, [row[0] for row in rows], now)
            _audit_redaction(tenant, rows, days=locked.days, cutoff=cutoff)
        redacted += len(rows)
        batches += 1
        after = rows[-1][1]
    return RetentionRun(tenant_id=tenant.pk, cutoff=cutoff, redacted=redacted, batches=batches)


def retention_apply_all(*, now: datetime | None = None) -> int:
    """The scheduled job: every tenant, each in its own batches. Returns how many outputs it redacted."""
    total = 0
    for tenant in Tenant.objects.order_by("pk"):
        with tenant_scope(tenant):  # each tenant's rows in its own scope (hitl/tenancy.py)
            total += retention_apply(tenant=tenant, now=now).redacted
    return total
