"""The classification at ingest of outputs changed before it was kept (reviews migration 0021).

Since 0021 the first change of an output's tier or reason keeps the ingest's
(``Output.keep_ingest_classification``), which the output's audit digest covers. An output the
judges (or an adjudication, a second look, a thumbs-down) changed before has none, and its digest
no longer recomputes. :func:`ingest_classification_backfill` finds the ingest's tier and reason
again where a candidate reproduces the stored digest, and only then keeps it: a wrong candidate
cannot reproduce a SHA-256, so nothing is ever kept that ingest did not write.

The candidates: the reason without what later steps added (each ``"; "``-separated ending), and
for a judged output the reason ingest writes while judges run (``reviews.services.ingest``'s
``_awaiting_judges``): the classification (a prefix of the judged reason), each tier of the policy
version that classified it with each mode, and the plan's judges by their names.
"""

from collections.abc import Iterator

from django.db import transaction

from hitl.db import bulk_update
from policies.models import Judge
from policies.selectors import compiled_policy_version
from reviews.models import Output
from reviews.services.ingest import output_audit_digest_of
from tenants.audit import SYSTEM, audit_record_batch
from tenants.models import Tenant

MODES = ("sequential", "parallel", "adaptive", "hybrid")
BATCH = 1000


def _candidates(output: Output, tiers: list[str], judge_names: dict[int, str]) -> Iterator[tuple[str, str]]:
    parts = output.decision_reason.split("; ")
    for end in range(len(parts) - 1, 0, -1):  # later steps only ever add to the reason
        yield output.risk_tier, "; ".join(parts[:end])
    if output.judged_at is None or not output.judge_plan:
        return
    names = ", ".join(judge_names.get(judge_id, "") for judge_id, *_ in output.judge_plan)
    raised = output.decision_reason.split(": tier raised from ", 1)
    first = [raised[1].split(" ", 1)[0]] if len(raised) == 2 else []
    for end in range(len(parts), 0, -1):
        classification = "; ".join(parts[:end])
        for tier in dict.fromkeys([*first, output.risk_tier, *tiers]):
            for mode in MODES:
                yield tier, f"{classification}; tier {tier} ({mode}): waiting for judges {names}"


def ingest_classification_recover(output: Output, tiers: list[str], judge_names: dict[int, str]) -> tuple | None:
    """``(tier, reason)`` as ingest classified ``output``, when a candidate reproduces its digest."""
    for tier, reason in _candidates(output, tiers, judge_names):
        output.received_risk_tier, output.received_decision_reason = tier, reason
        if output_audit_digest_of(output) == output.audit_digest:
            return tier, reason
    output.received_risk_tier = output.received_decision_reason = None
    return None


def ingest_classification_backfill(*, tenant: Tenant, batch: int = BATCH) -> dict[str, int]:
    """Keep the ingest's classification of the tenant's outputs whose digest no longer recomputes
    and that have none kept; returns counts: ``checked``, ``recovered``, ``unrecoverable``. One
    ``output.classification_kept`` audit event per batch commits to the outputs it repaired."""
    counts = {"checked": 0, "recovered": 0, "unrecoverable": 0}
    judge_names = dict(Judge.objects.for_tenant(tenant).values_list("id", "name"))
    tiers_of: dict[int | None, list[str]] = {}
    last = None
    while True:
        outputs = Output.objects.for_tenant(tenant).filter(received_risk_tier__isnull=True).exclude(audit_digest="")
        if last is not None:
            outputs = outputs.filter(pk__gt=last)
        page = list(
            outputs.order_by("pk").only(
                "id", "tenant", "external_id", "application", "content_hash", "received_at", "risk_tier",
                "policy_version", "sampling_draw", "decision_reason", "audit_digest", "judged_at", "judge_plan",
                *Output.INGEST_CLASSIFICATION_FIELDS,
            )[:batch]
        )  # fmt: skip
        if not page:
            return counts
        last = page[-1].pk
        repaired = []
        for output in page:
            output.tenant = tenant
            counts["checked"] += 1
            if output_audit_digest_of(output) == output.audit_digest:
                continue  # unchanged since ingest
            version = output.policy_version
            if version not in tiers_of:
                try:
                    tiers_of[version] = list(compiled_policy_version(tenant=tenant, version=version).tiers)
                except Exception:  # a version the history no longer has
                    tiers_of[version] = []
            if ingest_classification_recover(output, tiers_of[version], judge_names) is None:
                counts["unrecoverable"] += 1
            else:
                repaired.append(output)
        if repaired:
            with transaction.atomic():
                bulk_update(
                    Output,
                    Output.INGEST_CLASSIFICATION_FIELDS,
                    [(o.pk, o.received_risk_tier, o.received_decision_reason) for o in repaired],
                )
                audit_record_batch(
                    tenant=tenant,
                    actor=SYSTEM,
                    kind="output.classification_kept",
                    object_type="output",
                    digests=[(o.pk, o.audit_digest) for o in repaired],
                    data={"why": "the ingest's tier and reason, found again from the digest (reviews 0021)"},
                )
            counts["recovered"] += len(repaired)
