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
from policies.selectors import JudgeTable, application_statistics, compiled_policy, judge_table
from policies.signals import EMPTY_STATISTICS, measures_of
from reviews.models import Output
from reviews.routing import RoutingTable, plan_tasks, routing_table
from reviews.schemas import OutputSubmission
from reviews.services.claims import tasks_commitment, tasks_create
from reviews.services.judging import judges_enqueue, judges_enqueue_deferred
from tenants.audit import SYSTEM, Actor, audit_record_batch
from tenants.auditchain import digest_of_normalized, format_time, json_normalize
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
    "audit_digest",
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
    "signal_snapshot",
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


AUDIT_DIGEST_FIELDS = (
    "application",
    "content_hash",
    "decision_reason",
    "external_id",
    "id",
    "policy_version",
    "received_at",
    "risk_tier",
    "sampling_draw",
    "tenant",
)


def output_audit_digest(
    *,
    tenant_slug: str,
    output_id,
    external_id: str,
    application: str,
    content_hash: str,
    received_at,
    risk_tier: str,
    policy_version,
    sampling_draw,
    decision_reason: str,
) -> str:
    """The output's digest: SHA-256 of the canonical JSON (tenants/auditchain.py) of the record
    as received (``content_hash`` commits to the submitted body) and its classification at
    ingest (tier, policy version, sampling draw, reason). Keys: ``AUDIT_DIGEST_FIELDS``;
    ``id`` as a hyphenated UUID, ``received_at`` as the chain's UTC time, ``tenant`` the slug.
    """
    # Every value but the draw is a string, an int or None, which canonical JSON keeps as it is:
    # only the draw is normalized, and the record is encoded without walking it again (ingest's
    # hot path: a generic walk of ten fields cost as much as the policy's decision).
    return digest_of_normalized(
        {
            "application": application,
            "content_hash": content_hash,
            "decision_reason": decision_reason,
            "external_id": external_id,
            "id": str(output_id),
            "policy_version": policy_version,
            "received_at": format_time(received_at),
            "risk_tier": risk_tier,
            "sampling_draw": json_normalize(sampling_draw),
            "tenant": tenant_slug,
        }
    )


def output_ingest(*, tenant: Tenant, submission: OutputSubmission, actor: Actor = SYSTEM) -> IngestResult:
    """Store one output, or return the stored one on a repeat (409-worthy on a different body)."""
    return output_ingest_batch(tenant=tenant, submissions=[submission], actor=actor)[0]


def output_ingest_batch(
    *, tenant: Tenant, submissions: list[OutputSubmission], actor: Actor = SYSTEM
) -> list[IngestResult]:
    """Store new outputs in one transaction; a result per submission, in order (see ``_store``).

    The outputs stored are committed to by one ``output.received`` audit event (a Merkle
    root over their digests), appended last in the transaction.

    With judges run in-process (no broker), they ran when the transaction committed:
    the receipts of judged outputs are then read again, so that they tell what the
    judges decided.
    """
    prepared = _prepare(tenant, submissions)
    with transaction.atomic():
        results, judged = _store(tenant, prepared, actor)
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
    # Signal rules read the output's measures and its application's statistics: from a per-process
    # cache, one query a tenant a minute at most, and only for policies that have such rules.
    statistics = application_statistics(tenant=tenant) if policy.signals else EMPTY_STATISTICS
    received_text = format_time(now)  # the digests' form of ``now``, once for the batch
    candidates: dict[str, dict] = {}  # the first submission of each external id
    rows: list[tuple] = []
    for submission, content_hash in zip(submissions, hashes, strict=True):
        if submission.external_id in candidates:
            continue
        measures = (
            measures_of(output=submission.output, trace=submission.trace, metadata=submission.metadata)
            if policy.signals and policy.signals_apply(submission.application)
            else None
        )
        decision = policy.decide(
            external_id=submission.external_id,
            application=submission.application,
            model=submission.model,
            metadata=submission.metadata,
            confidence=submission.confidence,
            measures=measures,
            statistics=statistics,
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
        audit_digest = output_audit_digest(
            tenant_slug=tenant.slug,
            output_id=receipt["id"],
            external_id=submission.external_id,
            application=submission.application,
            content_hash=content_hash,
            received_at=received_text,
            risk_tier=decision.risk_tier,
            policy_version=decision.policy_version,
            sampling_draw=decision.draw,
            decision_reason=decision.reason,
        )
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
                audit_digest,
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
                decision.signal_snapshot,
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


def _store(tenant: Tenant, prepared: _Prepared, actor: Actor) -> tuple[list[IngestResult], list]:
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
    task_rows = _route(tenant, prepared.policy, prepared.routing, to_review, now) if to_review else []
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
    _audit_received(tenant, prepared.rows, inserted, task_rows, actor)

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


_ID, _EXTERNAL_ID, _DIGEST = (
    _INSERT_FIELDS.index("id"),
    _INSERT_FIELDS.index("external_id"),
    _INSERT_FIELDS.index("audit_digest"),
)


def _audit_received(tenant: Tenant, rows: list[tuple], inserted, task_rows: list[tuple], actor: Actor) -> None:
    """One ``output.received`` event for the outputs this batch stored, in external-id order
    (the order of the rows), with ``tasks`` committing to the review tasks created for
    them; last in the transaction, as it locks the tenant's chain."""
    leaves = [(row[_ID], row[_DIGEST]) for row in rows if row[_ID] in inserted]
    if leaves:
        audit_record_batch(
            tenant=tenant,
            actor=actor,
            kind="output.received",
            object_type="output",
            digests=leaves,
            data={"tasks": tasks_commitment(task_rows)} if task_rows else None,
        )


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


def _route(tenant: Tenant, policy, routing, receipts: list[dict], now) -> list[tuple]:
    """Review tasks for the sampled outputs, routed to their queues, in the same transaction (one INSERT);
    their audit event is appended by the caller, last."""
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
    return tasks_create(tenant=tenant, planned=planned, now=now, audit=False)


def _stored_receipts(tenant: Tenant, external_ids: set[str]) -> dict[str, dict]:
    rows = (
        Output.objects.for_tenant(tenant).filter(external_id__in=external_ids).values(*RECEIPT_FIELDS, "content_hash")
    )
    return {row["external_id"]: row for row in rows}
