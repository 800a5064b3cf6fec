"""Writes for outputs: idempotent ingest, classified and sampled by the tenant's policy, built for volume.

A batch costs a fixed number of queries whatever its length: one INSERT of the
new rows and, when some were stored before, one read of those. The policy comes
compiled from a per-version cache, so classifying and sampling add no query.
"""

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from hitl.db import as_health_check, bulk_insert, insert_statement
from hitl.enqueue import enqueue_on_commit
from hitl.errors import KeyUnconfirmed
from policies.engine import CompiledPolicy, Decision
from policies.selectors import JudgeTable, application_statistics, compiled_policy, judge_table
from policies.signals import EMPTY_STATISTICS, measures_of
from reviews.models import Output, ReviewTask
from reviews.routing import RoutingTable, plan_tasks, routing_table
from reviews.schemas import OutputSubmission
from reviews.services.claims import TASK_FIELDS, tasks_build, tasks_commitment, tasks_create
from reviews.services.judging import judges_enqueue, judges_enqueue_deferred
from tenants.audit import (
    Actor,
    audit_chain_row_locking,
    audit_head_doubt,
    audit_head_ensure,
    audit_record_batch,
    audit_record_batch_cte,
)
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


def output_ingest(
    *, tenant: Tenant, submission: OutputSubmission, actor: Actor | None = None, key_guard: tuple | None = None
) -> IngestResult:
    """Store one output, or return the stored one on a repeat (409-worthy on a different body).

    ``actor``: who sends it; by default the key of the request being served, else the system.
    ``key_guard``: the condition that confirms the request's API key (``TenantApi.key_guard``),
    checked by the write statement itself; where it does not hold, nothing is written, and
    KeyUnconfirmed is raised."""
    return output_ingest_batch(tenant=tenant, submissions=[submission], actor=actor, key_guard=key_guard)[0]


def output_ingest_batch(
    *,
    tenant: Tenant,
    submissions: list[OutputSubmission],
    actor: Actor | None = None,
    key_guard: tuple | None = None,
) -> list[IngestResult]:
    """Store new outputs in one transaction; a result per submission, in order (see ``_store``).

    The outputs stored are committed to by one ``output.received`` audit event (a Merkle
    root over their digests), appended last in the transaction. One output on PostgreSQL
    is one statement, its own transaction (``_write_one``).

    With judges run in-process (no broker), they ran when the transaction committed:
    the receipts of judged outputs are then read again, so that they tell what the
    judges decided.
    """
    prepared = _prepare(tenant, submissions)
    # One output on PostgreSQL is one statement: its own transaction, or in a caller's, a savepoint
    # (so that its failure leaves the caller's transaction usable).
    one = len(prepared.rows) == 1 and connection.vendor == "postgresql"
    if key_guard is not None and not one:
        raise KeyUnconfirmed  # only the one statement checks a guard: the caller confirms the key first
    with nullcontext() if one and not connection.in_atomic_block else transaction.atomic():
        results, judged = _store(tenant, prepared, actor, one_statement=one, key_guard=key_guard)
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


def _store(
    tenant: Tenant, prepared: _Prepared, actor: Actor | None, *, one_statement: bool, key_guard: tuple | None = None
) -> tuple[list[IngestResult], list]:
    """Insert first, ask later: the rows go in with ``ON CONFLICT DO NOTHING RETURNING id``,
    which stores every external id not yet stored (also against concurrent requests: the
    conflict check waits for them to finish), and only the rows it skipped are read back,
    to answer them as repeats (same body) or conflicts. A batch of new outputs is one
    query, then the audit append; a batch with repeats, one more; one output on
    PostgreSQL, one statement in all.
    """
    candidates, judges = prepared.candidates, prepared.judges
    inserted = _write_one(tenant, prepared, actor, key_guard) if one_statement else _write(tenant, prepared, actor)
    stored_before = {external_id for external_id, receipt in candidates.items() if receipt["id"] not in inserted}
    stored = _stored_receipts(tenant, stored_before) if stored_before else {}
    # A row stored under the id this call gave it is this call's own: its statement committed and
    # the answer was lost, and it was sent again (hitl.db.as_health_check). It was created here,
    # and its judges are enqueued here.
    ours = {external_id for external_id, receipt in stored.items() if receipt["id"] == candidates[external_id]["id"]}
    if ours:
        inserted = {*inserted, *(candidates[external_id]["id"] for external_id in ours)}
        stored_before -= ours
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
    candidates.update({external_id: stored[external_id] for external_id in stored_before if external_id in stored})

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
_OUTPUT_CONFLICT = ("tenant", "external_id")
_STORED_RETURNS = ("tenant", "received_at")  # (after the id)
_TASKS_FROM_STORED = ("stored", {"output": "id", "tenant": "tenant_id", "created_at": "received_at"})


def _write(tenant: Tenant, prepared: _Prepared, actor: Actor | None) -> set:
    """The rows (one INSERT), the tasks of those sampled (one INSERT) and the audit event,
    in the caller's transaction; returns the ids inserted."""
    inserted = bulk_insert(Output, _INSERT_FIELDS, prepared.rows, skip_conflicts_on=_OUTPUT_CONFLICT)
    to_review = [
        receipt for receipt in prepared.candidates.values() if receipt["review_required"] and receipt["id"] in inserted
    ]
    task_rows = (
        tasks_create(tenant=tenant, planned=_route(prepared, to_review), now=prepared.now, audit=False)
        if to_review
        else []
    )
    leaves = [(row[_ID], row[_DIGEST]) for row in prepared.rows if row[_ID] in inserted]
    if leaves:  # last in the transaction, as it locks the tenant's chain
        audit_record_batch(tenant=tenant, actor=actor, **_received_event(leaves, task_rows))
    return inserted


def _write_one(tenant: Tenant, prepared: _Prepared, actor: Actor | None, key_guard: tuple | None = None) -> set:
    """PostgreSQL, one output (most services send one per LLM call): the row, its tasks if it
    is sampled and its ``output.received`` event in one statement, a transaction by itself
    outside a caller's (the row's CTE feeds the others: a repeat inserts nothing, so neither tasks nor event
    follow). One round trip with its scope, as a plain insert, where the transaction of
    ``_write`` took three: the insert, the tasks, the append with the COMMIT.

    With ``key_guard`` the row goes in only where the guard holds (the request's key is still
    valid and its tenant's configuration unchanged): the statement is then the key's check as
    well, and the request makes no lookup of its own. Nothing written: KeyUnconfirmed.

    The statement is also the request's check of its kept connection (``hitl.db.as_health_check``):
    no ``SELECT 1`` goes before it."""
    row = prepared.rows[0]
    receipt = prepared.candidates[row[_EXTERNAL_ID]]
    task_rows = (
        tasks_build(tenant=tenant, planned=_route(prepared, [receipt]), now=prepared.now)
        if receipt["review_required"]
        else []
    )
    audit_head_ensure(tenant)  # (a statement once per process and tenant)
    guard_sql, params = key_guard if key_guard is not None else ("", [])
    stored_sql, stored_params = insert_statement(
        Output,
        _INSERT_FIELDS,
        [row],
        skip_conflicts_on=_OUTPUT_CONFLICT,
        returning=_STORED_RETURNS if task_rows else (),
        when="(SELECT ok FROM key_ok)" if guard_sql else "",
    )
    ctes = [f"key_ok AS (SELECT {guard_sql} AS ok)"] if guard_sql else []
    ctes.append(f"stored AS ({stored_sql})")
    params = [*params, *stored_params]
    if task_rows:
        # The tasks take the output's id, tenant and time from the row inserted (none on a repeat):
        # a sampled output's statement then has at most 50 parameters, the most whose conversion
        # psycopg caches (it cost a fifth of such a request's CPU uncached).
        tasks_sql, tasks_params = insert_statement(ReviewTask, TASK_FIELDS, task_rows, from_cte=_TASKS_FROM_STORED)
        ctes.append(f"tasks AS ({tasks_sql})")
        params += tasks_params
    event_sql, event_params = audit_record_batch_cte(
        tenant=tenant, actor=actor, source="stored", **_received_event([(row[_ID], row[_DIGEST])], task_rows)
    )
    ctes.append(event_sql)
    if guard_sql:
        sql = f"WITH {', '.join(ctes)} SELECT key_ok.ok, stored.id FROM key_ok LEFT JOIN stored ON true"  # noqa: S608
    else:
        sql = f"WITH {', '.join(ctes)} SELECT true, id FROM stored"  # noqa: S608
    params += event_params

    def write() -> list[tuple]:
        with connection.cursor() as cursor:
            audit_chain_row_locking()
            cursor.execute(sql, params)
            return cursor.fetchall()

    try:
        # (sent twice, the statement inserts nothing the second time: _store knows its own row by its id)
        found = as_health_check(write)
    except IntegrityError:
        audit_head_doubt(tenant)  # (a vanished counter row fails the event's NOT NULL seq: recreated next time)
        raise
    if guard_sql and not found[0][0]:
        raise KeyUnconfirmed
    return {stored_id for _, stored_id in found if stored_id is not None}


def output_audit_digest_of(output: Output) -> str:
    """The digest recomputed from a stored output: its record and its classification at ingest
    (``Output.ingest_classification``: what the judges or later steps changed is not covered)."""
    tier, reason = output.ingest_classification
    return output_audit_digest(
        tenant_slug=output.tenant.slug,
        output_id=output.pk,
        external_id=output.external_id,
        application=output.application,
        content_hash=output.content_hash,
        received_at=output.received_at,
        risk_tier=tier,
        policy_version=output.policy_version,
        sampling_draw=output.sampling_draw,
        decision_reason=reason,
    )


def _received_event(leaves: list[tuple], task_rows: list[tuple]) -> dict:
    """The ``output.received`` event of the outputs a batch stored (``(id, digest)`` leaves in
    external-id order, the order of the rows), with ``tasks`` committing to the review tasks
    created for them."""
    return {
        "kind": "output.received",
        "object_type": "output",
        "digests": leaves,
        "data": {"tasks": tasks_commitment(task_rows)} if task_rows else None,
    }


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


def _route(prepared: _Prepared, receipts: list[dict]) -> list[tuple]:
    """The review tasks of the sampled outputs, routed to their queues: ``(output id, PlannedTask)``."""
    planned = []
    for receipt in receipts:
        decision = receipt["_decision"]
        for task in plan_tasks(
            policy=prepared.policy,
            routing=prepared.routing,
            decision=decision,
            application=receipt["application"],
            external_id=receipt["external_id"],
            received_at=prepared.now,
        ):
            planned.append((receipt["id"], task))
    return planned


def _stored_receipts(tenant: Tenant, external_ids: set[str]) -> dict[str, dict]:
    rows = (
        Output.objects.for_tenant(tenant).filter(external_id__in=external_ids).values(*RECEIPT_FIELDS, "content_hash")
    )
    return {row["external_id"]: row for row in rows}
