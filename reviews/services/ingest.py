"""Writes for outputs: idempotent ingest, classified and sampled by the tenant's policy, built for volume.

A batch costs a fixed number of queries whatever its length: one INSERT of the
new rows and, when some were stored before, one read of those. The policy comes
compiled from a per-version cache, so classifying and sampling add no query.
"""

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from hitl.db import bulk_insert
from hitl.enqueue import enqueue_on_commit
from policies.engine import CompiledPolicy, Decision
from policies.selectors import JudgeTable, compiled_policy, judge_table
from reviews.models import Output
from reviews.routing import RoutingTable, plan_tasks, routing_table
from reviews.schemas import OutputSubmission
from reviews.services.claims import tasks_create
from reviews.services.judging import judges_enqueue, judges_enqueue_deferred
from tenants.models import Tenant

RECEIPT_FIELDS = (
    "id",
    "external_id",
    "application",
    "status",
    "risk_tier",
    "review_required",
    "delivery",
    "policy_version",
    "received_at",
)

_INSERT_FIELDS = (
    "id",
    "tenant",
    "external_id",
    "application",
    "input",
    "output",
    "trace",
    "metadata",
    "model",
    "confidence",
    "content_hash",
    "status",
    "risk_tier",
    "review_required",
    "delivery",
    "policy_version",
    "decision_reason",
    "sampling_draw",
    "received_at",
    "judge_plan",
    "judges_enqueued_at",
    "session_id",
)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one submission: its outcome and the stored record's receipt fields."""

    outcome: Literal["created", "existing", "conflict"]
    receipt: dict


def output_content_hash(submission: OutputSubmission) -> str:
    """SHA-256 of the canonical body (keys sorted at every depth)."""
    # Without a session, the body hashes as before sessions existed: a repeat of an output stored
    # then is still a repeat, not a conflict.
    body = submission.model_dump(exclude={"session_id"} if submission.session_id is None else None)
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def output_ingest(*, tenant: Tenant, submission: OutputSubmission) -> IngestResult:
    """Store one output, or return the stored one on a repeat (409-worthy on a different body)."""
    return output_ingest_batch(tenant=tenant, submissions=[submission])[0]


def output_ingest_batch(*, tenant: Tenant, submissions: list[OutputSubmission]) -> list[IngestResult]:
    """Store new outputs in one transaction; a result per submission, in order (see ``_store``).

    A single output that needs no review task and no judge is one ``INSERT``, atomic
    on its own: it is sent without ``BEGIN`` and ``COMMIT``, two round trips that
    cost a single submission as much as the insert itself (bench/README.md).

    With judges run in-process (no broker), they ran when the transaction committed:
    the receipts of judged outputs are then read again, so that they tell what the
    judges decided.
    """
    prepared = _prepare(tenant, submissions)
    if len(prepared.rows) == 1 and not prepared.needs_tasks and not prepared.plans:
        results, judged = _store(tenant, prepared)
    else:
        with transaction.atomic():
            results, judged = _store(tenant, prepared)
    if judged and settings.CELERY_TASK_ALWAYS_EAGER and not transaction.get_connection().in_atomic_block:
        fresh = {
            row["id"]: row
            for row in Output.objects.for_tenant(tenant).filter(id__in=judged).values(*RECEIPT_FIELDS, "content_hash")
        }
        results = [IngestResult(result.outcome, fresh.get(result.receipt["id"], result.receipt)) for result in results]
    return results


@dataclass(slots=True)
class _Prepared:
    """Submissions decided and turned into rows, before anything is written."""

    submissions: list[OutputSubmission]
    hashes: list[str]
    candidates: dict[str, dict]  # the receipt of the first submission of each external id
    rows: list[tuple]  # in ``_INSERT_FIELDS`` order, sorted by external id
    needs_tasks: bool  # some row is sampled for review: its tasks are inserted with it
    plans: bool  # some row waits for judges: they are enqueued on commit
    policy: CompiledPolicy
    routing: RoutingTable
    judges: JudgeTable
    now: datetime


def _prepare(tenant: Tenant, submissions: list[OutputSubmission]) -> _Prepared:
    """Classify and sample every submission with the tenant's cached policy (no query)."""
    hashes = [output_content_hash(submission) for submission in submissions]
    policy = compiled_policy(tenant=tenant)
    routing = routing_table(tenant=tenant)
    judges = judge_table(tenant=tenant)
    now = timezone.now()
    candidates: dict[str, dict] = {}  # the first submission of each external id
    rows: list[tuple] = []
    for submission, content_hash in zip(submissions, hashes, strict=True):
        if submission.external_id in candidates:
            continue
        decision = policy.decide(
            external_id=submission.external_id,
            application=submission.application,
            model=submission.model,
            metadata=submission.metadata,
            confidence=submission.confidence,
        )
        plan = judges.plan(submission.application, decision.risk_tier) if judges.judges else []
        if plan and decision.status == "blocked":
            plan = []  # the stop button blocked it: nothing to judge
        elif plan and decision.draw is not None:  # (review_all keeps its tasks; the judges inform the reviewers)
            decision = _awaiting_judges(policy, decision, judges, plan)
        receipt = {
            "id": Output._meta.pk.default(),
            "external_id": submission.external_id,
            "application": submission.application,
            "status": decision.status,
            "risk_tier": decision.risk_tier,
            "review_required": decision.review_required,
            "delivery": decision.delivery,
            "policy_version": decision.policy_version,
            "received_at": now,
            "content_hash": content_hash,
            "_decision": decision,
        }
        candidates[submission.external_id] = receipt
        rows.append(
            (
                receipt["id"],
                tenant.pk,
                submission.external_id,
                submission.application,
                submission.input,
                submission.output,
                submission.trace,
                submission.metadata,
                submission.model,
                submission.confidence,
                content_hash,
                receipt["status"],
                receipt["risk_tier"],
                receipt["review_required"],
                receipt["delivery"],
                decision.policy_version,
                decision.reason,
                decision.draw,
                now,
                plan,
                now if plan else None,
                submission.session_id or "",
            )
        )
        if plan:
            receipt["_plan"] = plan
    rows.sort(key=lambda row: row[2])
    return _Prepared(
        submissions=submissions,
        hashes=hashes,
        candidates=candidates,
        rows=rows,
        needs_tasks=any(receipt["review_required"] for receipt in candidates.values()),
        plans=any("_plan" in receipt for receipt in candidates.values()),
        policy=policy,
        routing=routing,
        judges=judges,
        now=now,
    )


def _store(tenant: Tenant, prepared: _Prepared) -> tuple[list[IngestResult], list]:
    """Insert first, ask later: one ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``
    stores every external id not yet stored (also against concurrent requests:
    the conflict check waits for them to finish), and only the rows it skipped
    are read back, to answer them as repeats (same body) or conflicts. A batch of
    new outputs is one query; a batch with repeats, two. Rows go in external-id
    order, so that overlapping concurrent batches lock alike and cannot deadlock.
    """
    candidates, now, judges = prepared.candidates, prepared.now, prepared.judges
    inserted = bulk_insert(Output, _INSERT_FIELDS, prepared.rows, skip_conflicts_on=("tenant", "external_id"))
    stored_before = {external_id for external_id, receipt in candidates.items() if receipt["id"] not in inserted}
    to_review = [receipt for receipt in candidates.values() if receipt["review_required"] and receipt["id"] in inserted]
    if to_review:
        _route(tenant, prepared.policy, prepared.routing, to_review, now)
    plans = {
        receipt["id"]: receipt["_plan"]
        for receipt in candidates.values()
        if "_plan" in receipt and receipt["id"] in inserted
    }
    if plans:
        kinds = {judge.id: judge.kind for judge in judges.judges}
        enqueue_on_commit(
            lambda: judges_enqueue(plans=plans, kinds=kinds),
            what=f"the judges of {len(plans)} outputs",
            on_failure=lambda: judges_enqueue_deferred(output_ids=list(plans)),
        )
    if stored_before:
        candidates.update(_stored_receipts(tenant, stored_before))

    results = []
    created: set[str] = set()
    for submission, content_hash in zip(prepared.submissions, prepared.hashes, strict=True):
        receipt = candidates[submission.external_id]
        if submission.external_id not in stored_before and submission.external_id not in created:
            created.add(submission.external_id)
            outcome = "created"
        else:
            outcome = "existing" if receipt["content_hash"] == content_hash else "conflict"
        results.append(IngestResult(outcome, receipt))
    return results, list(plans)


def _awaiting_judges(policy, decision: Decision, judges, plan: list) -> Decision:
    """Sampling waits for the judges. Meanwhile a sequential tier holds delivery; the
    others deliver (a review, if the judges call for one, follows)."""
    names = ", ".join(judges.name_of(judge_id) for judge_id, _ in plan)
    return replace(
        decision,
        review_required=False,
        delivery="hold" if decision.mode == "sequential" else "deliver",
        status="judging",
        reason=f"{decision.classification}; tier {decision.risk_tier} ({decision.mode}): waiting for judges {names}",
    )


def _route(tenant: Tenant, policy, routing, receipts: list[dict], now) -> None:
    """Review tasks for the sampled outputs, routed to their queues, in the same transaction (one INSERT)."""
    planned = []
    for receipt in receipts:
        decision = receipt["_decision"]
        for task in plan_tasks(
            policy=policy,
            routing=routing,
            decision=decision,
            application=receipt["application"],
            external_id=receipt["external_id"],
            received_at=now,
        ):
            planned.append((receipt["id"], task))
    tasks_create(tenant=tenant, planned=planned, now=now)


def _stored_receipts(tenant: Tenant, external_ids: set[str]) -> dict[str, dict]:
    rows = (
        Output.objects.for_tenant(tenant).filter(external_id__in=external_ids).values(*RECEIPT_FIELDS, "content_hash")
    )
    return {row["external_id"]: row for row in rows}
