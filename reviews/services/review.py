"""A person's review of a claimed task, and the output's decision when the review completes it.

The rule that decides lives in :mod:`reviews.decision`; this module reads the rows it
needs and writes what it returns, through the ORM (portable) or, on PostgreSQL, in a
few set statements sent in two round trips (the hot path: a reviewer waits on it): the
locks with the rule's reads, then the writes with the COMMIT (``hitl.postgres``).
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.utils import timezone

from hitl.errors import (
    ConflictError,
    DomainValidationError,
    ForbiddenError,
    NotFoundError,
    RuleViolationError,
)
from policies.models import Judge, JudgeOnFail
from policies.scoring import scores_validate
from policies.selectors import compiled_policy_version, rubric_criteria
from reviews.decision import (
    APPROVAL_PURPOSES,
    DEFAULT_ADJUDICATION_TOLERANCE,
    Outcome,
    ReviewRow,
    ScoredReview,
    adjudication_level,
    adjudication_outcome,
    output_outcome,
    reviews_disagreement,
    second_look_level,
)
from reviews.models import (
    Decision,
    GoldTask,
    Judgement,
    JudgementResult,
    Output,
    Review,
    ReviewTask,
    TaskPurpose,
    TaskStatus,
)
from reviews.services.claims import certification_holds, lease_check, reviewer_rights
from reviews.services.gold import gold_answer_record, gold_plant_after_review
from reviews.services.webhooks import webhook_deliveries_create
from tenants.audit import Actor, audit_record, request_actor, text_digest
from tenants.models import Membership, Tenant


@dataclass(frozen=True)
class ReviewOutcome:
    review: Review
    output: Output
    decided_now: bool


_TASK_FIELDS_REVIEWED = (
    "id",
    "tenant",
    "output",
    "queue",
    "purpose",
    "status",
    "level_required",
    "claimed_by",
    "lease_expires_at",
    "rubric",
    "rubric_version",
    "assigned_to",
)
_DECISION_FIELDS = (  # not the output's input, trace and metadata: nothing here reads them
    "id",
    "tenant",
    "external_id",
    "application",
    "output",
    "content_hash",
    "status",
    "risk_tier",
    "policy_version",
    "delivery",
    "decision",
    "final_output",
    "decided_by",
    "decided_at",
)


def _task_and_output_for_update(tenant: Tenant, task_id) -> tuple[ReviewTask, tuple | None]:
    """The task with its output, both locked by one statement: the output's row first.

    Every path that decides locks the output before its tasks (a reject cancels the
    output's other tasks), so the reverse order could deadlock. PostgreSQL takes the
    row locks of ``FOR NO KEY UPDATE OF`` in the order the tables are named there
    (``tests/reviews/test_claim_concurrency.py`` checks it). Plain SQL, not the ORM:
    compiling this join with ``select_related`` and ``only`` cost more CPU than the
    rest of a review.

    On PostgreSQL the rows the decision rule reads (``_rule_reads_sql``) come in the same
    round trip, read by a statement of their own after the lock is taken: returns them
    beside the task (None elsewhere).
    """
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each use of the proxy is a thread-local lookup
    sql, task_fields, output_fields, converters = _task_and_output_sql(db.vendor)
    task_pk = ReviewTask._meta.pk.get_db_prep_value(task_id, db)
    params = [task_pk, tenant.pk, tenant.pk]
    reads = None
    if db.vendor == "postgresql":  # with the transaction's BEGIN and scope: one round trip
        rows, read = db.hitl_pipeline([(sql, params), (_rule_reads_sql(), {"task": task_pk, "tenant": tenant.pk})])
        row = rows[0] if rows else None
        reads = read[0]
    else:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    if row is None:
        raise NotFoundError("Task not found.")
    row = _converted(db, row, converters)
    task = ReviewTask.from_db(db.alias, [field.attname for field in task_fields], row[: len(task_fields)])
    output = Output.from_db(db.alias, [field.attname for field in output_fields], row[len(task_fields) :])
    task.output = output
    return task, reads


@lru_cache(maxsize=4)
def _task_and_output_sql(vendor: str) -> tuple[str, tuple, tuple, tuple]:
    """The statement, the fields it reads and the converters of its columns, per vendor."""
    quote = connection.ops.quote_name
    task_fields = tuple(field for field in ReviewTask._meta.concrete_fields if field.name in _TASK_FIELDS_REVIEWED)
    output_fields = tuple(field for field in Output._meta.concrete_fields if field.name in _DECISION_FIELDS)
    columns = ", ".join(
        [f"t.{quote(field.column)}" for field in task_fields] + [f"o.{quote(field.column)}" for field in output_fields]
    )
    lock = "FOR NO KEY UPDATE OF o, t" if vendor == "postgresql" else ""  # SQLite serialises writers
    sql = f"""
        SELECT {columns} FROM {quote(ReviewTask._meta.db_table)} t
        JOIN {quote(Output._meta.db_table)} o ON o.id = t.output_id
        WHERE t.id = %s AND t.tenant_id = %s AND o.tenant_id = %s {lock}"""  # noqa: S608 (names from model meta)
    columns = tuple(field.get_col(field.model._meta.db_table) for field in (*task_fields, *output_fields))
    return sql, task_fields, output_fields, _converters(columns)


def _converters(columns: tuple) -> tuple:
    """``(position, column, converters)`` of the columns that have converters, found once
    rather than asked of every column on every review."""
    db = connections[DEFAULT_DB_ALIAS]
    found = []
    for position, column in enumerate(columns):
        converters = (*db.ops.get_db_converters(column), *column.get_db_converters(db))
        if converters:
            found.append((position, column, converters))
    return tuple(found)


def _converted(db, row, converters) -> list:
    """The database's values as the ORM would hand them back (SQLite's text dates and UUIDs)."""
    values = list(row)
    for position, column, functions in converters:
        for converter in functions:
            values[position] = converter(values[position], column, db)
    return values


ONE_REVIEW_PER_PERSON = "review_one_per_output_and_reviewer"  # reviews.models.Review's unique constraint


def review_submit(
    *,
    tenant: Tenant,
    user,
    task_id,
    decision: str,
    scores=None,
    corrected_output: str | None = None,
    comment: str = "",
    time_spent_seconds: int | None = None,
) -> ReviewOutcome:
    """The person's review of the task they hold, and the output's decision when it completes it.

    One transaction. On PostgreSQL the review's row may be written with its COMMIT
    (``_record_in_set_statements``): a second review of the output by the same person then
    fails the commit, and is answered as one refused before it (409 ``already_reviewed``).
    """
    try:
        return _review_submit(
            tenant=tenant,
            user=user,
            task_id=task_id,
            decision=decision,
            scores=scores,
            corrected_output=corrected_output,
            comment=comment,
            time_spent_seconds=time_spent_seconds,
        )
    except IntegrityError as error:
        if getattr(getattr(error.__cause__, "diag", None), "constraint_name", None) != ONE_REVIEW_PER_PERSON:
            raise
        raise ConflictError("You already reviewed this output.", code="already_reviewed") from error


@transaction.atomic
def _review_submit(
    *,
    tenant: Tenant,
    user,
    task_id,
    decision: str,
    scores,
    corrected_output: str | None,
    comment: str,
    time_spent_seconds: int | None,
) -> ReviewOutcome:
    now = timezone.now()
    task, reads = _task_and_output_for_update(tenant, task_id)
    output = task.output
    lease_check(task, user, now)
    # The lease is not a licence: the person must still be allowed this queue and level.
    reviewer = reviewer_rights(tenant.pk, str(tenant.config_token), user.pk, None)
    personal = task.assigned_to_id is not None  # a gold item (an exam's or live), only ever its person's
    if (
        reviewer is None
        or task.queue_id not in reviewer.queue_ids
        or (task.level_required > reviewer.level and not personal)
    ):
        raise ForbiddenError("You may no longer review tasks of this queue or level.")
    if (
        task.queue_id in reviewer.gated_queue_ids
        and not personal
        and not certification_holds(tenant=tenant, user_id=user.pk, queue_id=task.queue_id, now=now)
    ):
        raise ForbiddenError("Your certification for this queue is no longer valid: you may not review its tasks.")
    if decision not in Review.Verdict.values:
        raise DomainValidationError(
            f"decision: one of {', '.join(Review.Verdict.values)}", fields={"decision": ["Unknown decision."]}
        )
    # What each decision needs besides is a rule the published schema does not state: a 422.
    if decision == Review.Verdict.CORRECT and not corrected_output:
        raise RuleViolationError(
            "corrected_output: required when the decision is correct", fields={"corrected_output": ["Required."]}
        )
    if decision != Review.Verdict.CORRECT and corrected_output:
        raise RuleViolationError(
            "corrected_output: only with the decision correct", fields={"corrected_output": ["Only for correct."]}
        )
    if decision == Review.Verdict.ESCALATE:
        _escalation_check(tenant, output)
        if not comment:
            raise RuleViolationError("comment: say why you escalate", fields={"comment": ["Required when escalating."]})
        escalated_level = max(task.level_required, reviewer.level) + 1  # always above the one escalating
        if escalated_level > 3:
            raise RuleViolationError("Nobody ranks above your level to escalate to.", code="cannot_escalate")
    criteria = rubric_criteria(tenant=tenant, rubric_id=task.rubric_id, version=task.rubric_version)
    scores = scores_validate(criteria=criteria, scores=scores, decision=decision)
    review = Review(
        tenant=tenant,
        task=task,
        output=output,
        reviewer=user,
        purpose=task.purpose,
        decision=decision,
        scores=scores,
        corrected_output=corrected_output or "",
        comment=comment,
        time_spent_seconds=time_spent_seconds,
        rubric_id=task.rubric_id,
        rubric_version=task.rubric_version,
        shown={
            "output_id": str(output.pk),
            "content_hash": output.content_hash,
            "fields": ["input", "output", "trace", "metadata", "model", "confidence"],
            "risk_tier": output.risk_tier,
            "policy_version": output.policy_version,
            "rubric_version": task.rubric_version,
        },
        created_at=now,
    )
    if personal:
        gold = GoldTask.objects.for_tenant(tenant).filter(task_id=task.pk).first()
        if gold is not None:
            answered = gold_answer_record(
                tenant=tenant, gold=gold, task=task, review=review, criteria=criteria, now=now
            )
            return ReviewOutcome(answered.review, answered.output, answered.decided_now)
    may_decide = not output.decision and task.purpose != TaskPurpose.OVERLAP

    if decision == Review.Verdict.ESCALATE:
        _review_insert(review)
        task.status, task.claimed_by, task.claimed_at, task.lease_expires_at = TaskStatus.PENDING, None, None, None
        task.level_required = escalated_level
        task.escalation_reason = comment
        task.save(
            update_fields=[
                "status",
                "claimed_by",
                "claimed_at",
                "lease_expires_at",
                "level_required",
                "escalation_reason",
            ]
        )
        _review_audit(tenant, task, review, "task.escalated", {"level_required": escalated_level})
        return ReviewOutcome(review, output, decided_now=False)

    if task.purpose == TaskPurpose.ADJUDICATION:
        return _adjudicate(tenant, task, output, review, now)
    if connection.vendor == "postgresql":
        decided_now, overlap_reviewed = _record_in_set_statements(
            tenant, task, output, review, may_decide, now, reviewer.level, reads
        )
    else:
        decided_now, overlap_reviewed = _record_portably(tenant, task, output, review, may_decide, now, reviewer.level)
    adjudication = None
    if overlap_reviewed or task.purpose == TaskPurpose.OVERLAP:  # costs nothing on outputs without overlap
        adjudication = _adjudication_open(tenant, task, output, now)
    decided = None
    if decided_now:  # the decision is in the review's event: one append, the chain's lock held once
        decided = {
            "output": output.pk,
            "decision": output.decision,
            "status": output.status,
            "delivery": output.delivery,
            "final_output_sha256": text_digest(output.final_output),
            "decided_by": output.decided_by_id,
            "decided_at": output.decided_at,
        }
    extra = {"decided": decided}
    if adjudication is not None:
        extra["adjudication"] = adjudication
    _review_audit(tenant, task, review, "task.reviewed", extra)
    rate = reviewer.gold_rates.get(task.queue_id, 0.0)
    if rate:  # a gold item for their next claim, at the queue's rate (costs nothing when the draw says no)
        gold_plant_after_review(tenant=tenant, user=user, queue_id=task.queue_id, task_id=task.pk, rate=rate, now=now)
    return ReviewOutcome(review, output, decided_now)


ADJUDICATED_PURPOSES = (TaskPurpose.APPROVAL, TaskPurpose.OVERLAP)  # whose reviews are compared


def adjudication_tolerance() -> int:
    return int(getattr(settings, "HITL_ADJUDICATION_TOLERANCE", DEFAULT_ADJUDICATION_TOLERANCE))


def _adjudication_open(tenant: Tenant, task: ReviewTask, output: Output, now: datetime) -> dict | None:
    """An output's overlap and approval reviews disagree: one adjudication task, a level up.

    Once per output. The reviews compared are the approval and overlap ones (escalations
    left out); the rubric is the task's. Returns what the audit event records, or None.
    """
    tasks = ReviewTask.objects.for_tenant(tenant).filter(output=output)
    if tasks.filter(purpose=TaskPurpose.ADJUDICATION).exists():
        return None
    rows = list(
        Review.objects.for_tenant(tenant)
        .filter(output=output, purpose__in=ADJUDICATED_PURPOSES)
        .exclude(decision=Review.Verdict.ESCALATE)
        .values_list("reviewer_id", "decision", "scores", "purpose", "id")
        .order_by("created_at")
    )
    if len(rows) < 2 or not any(row[3] == TaskPurpose.OVERLAP for row in rows):
        return None
    criteria = rubric_criteria(tenant=tenant, rubric_id=task.rubric_id, version=task.rubric_version)
    reason = reviews_disagreement(
        reviews=[ScoredReview(row[0], row[1], row[2] or {}) for row in rows],
        criteria=criteria,
        tolerance=adjudication_tolerance(),
    )
    if reason is None:
        return None
    levels = (
        Membership.objects.for_tenant(tenant)
        .filter(user_id__in=[row[0] for row in rows])
        .values_list("reviewer_level", flat=True)
    )
    level = adjudication_level(reviewer_levels=levels)
    why = f"overlap reviews disagree: {reason}; a level {level} reviewer adjudicates"
    adjudication = tasks.create(
        output=output,
        queue_id=task.queue_id,
        purpose=TaskPurpose.ADJUDICATION,
        level_required=level,
        priority=task.priority,
        due_at=max(task.due_at, now),
        created_at=now,
        rubric_id=task.rubric_id,
        rubric_version=task.rubric_version,
        escalation_reason=why,
    )
    kept = output.keep_ingest_classification()
    output.decision_reason = f"{output.decision_reason}; {why}".lstrip("; ")
    output.save(update_fields=["decision_reason", *kept])
    return {"task": adjudication.pk, "level_required": level, "reason": reason, "reviews": [row[4] for row in rows]}


def _adjudicate(tenant: Tenant, task: ReviewTask, output: Output, review: Review, now: datetime) -> ReviewOutcome:
    """The adjudicator's verdict is the output's decision, replacing any decided before; the
    output's other open tasks (overlap ones aside) are cancelled and the webhooks told."""
    _review_insert(review)
    task.status = TaskStatus.DONE
    task.save(update_fields=["status"])
    outcome = adjudication_outcome(
        verdict=review.decision, corrected_output=review.corrected_output, submitted_output=output.output
    )
    before = {
        "decision": output.decision,
        "status": output.status,
        "delivery": output.delivery,
        "final_output": output.final_output,
        "decided_by": output.decided_by_id,
        "decided_at": output.decided_at,
    }
    _decision_apply(output, outcome, review, now)
    kept = output.keep_ingest_classification()
    output.decision_reason = f"{output.decision_reason}; adjudicated: {outcome.decision}".lstrip("; ")
    output.save(
        update_fields=[
            "decision",
            "status",
            "final_output",
            "delivery",
            "decided_by",
            "decided_at",
            "decision_reason",
            *kept,
        ]
    )
    ReviewTask.objects.for_tenant(tenant).filter(
        output=output, status__in=[TaskStatus.PENDING, TaskStatus.CLAIMED]
    ).exclude(purpose=TaskPurpose.OVERLAP).update(
        status=TaskStatus.CANCELLED, claimed_by=None, claimed_at=None, lease_expires_at=None
    )
    webhook_deliveries_create(tenant=tenant, output=output)
    decided = {
        "output": output.pk,
        "decision": output.decision,
        "status": output.status,
        "delivery": output.delivery,
        "final_output": output.final_output,
        "decided_by": output.decided_by_id,
        "decided_at": output.decided_at,
    }
    _review_audit(tenant, task, review, "output.adjudicated", {"decided": decided, "before": before})
    return ReviewOutcome(review, output, decided_now=True)


def _review_audit(tenant: Tenant, task: ReviewTask, review: Review, kind: str, extra: dict) -> None:
    """The review as given: scores, decision, correction, comment, time spent and what the reviewer was shown."""
    audit_record(
        tenant=tenant,
        # the request's key or signed-in person; else (a command, a worker) the person, acting as a reviewer
        actor=request_actor() or Actor.of_person(review.reviewer, "reviewer"),
        kind=kind,
        object_type="task",
        object_id=task.pk,
        data={
            "review": review.pk,
            "output": review.output_id,
            "reviewer": review.reviewer_id,
            "purpose": review.purpose,
            "decision": review.decision,
            "scores": review.scores,
            "corrected_output_sha256": text_digest(review.corrected_output),
            "comment_sha256": text_digest(review.comment),
            "time_spent_seconds": review.time_spent_seconds,
            "rubric": review.rubric_id,
            "rubric_version": review.rubric_version,
            "shown": review.shown,
            **extra,
        },
    )


def escalation_allowed(*, tenant: Tenant, output: Output) -> bool:
    """Whether the output's tier lets its reviews escalate (``escalation: true``).

    The tier is the output's, under the policy version that classified it (the one its
    decision is audited against and its tasks were planned with).
    """
    tier = _escalation_tier(tenant, output)
    return tier is not None and tier.escalation


def _escalation_tier(tenant: Tenant, output: Output):
    if output.policy_version is None:
        return None
    try:
        return compiled_policy_version(tenant=tenant, version=output.policy_version).tiers.get(output.risk_tier)
    except NotFoundError:  # a version missing from the history: nothing says it may
        return None


def _escalation_check(tenant: Tenant, output: Output) -> None:
    if escalation_allowed(tenant=tenant, output=output):
        return
    tier = _escalation_tier(tenant, output)
    where = f"tier '{output.risk_tier}' of policy version {output.policy_version}"
    message = (
        f"Escalation is off for {where} (escalation: false); approve, reject or correct instead."
        if tier is not None
        else f"Escalation is not allowed: {where} is not in the policy's history."
    )
    raise DomainValidationError(f"decision: {message}", fields={"decision": [message]}, code="escalation_not_allowed")


def _review_row(review: Review) -> ReviewRow:
    return ReviewRow(review.decision, review.corrected_output, review.created_at)


def _review_insert(review: Review) -> None:
    try:
        # No savepoint: on a duplicate the whole review is refused and rolled back anyway.
        review.save(force_insert=True)
    except IntegrityError as error:
        raise ConflictError("You already reviewed this output.", code="already_reviewed") from error


def _record_portably(
    tenant: Tenant, task: ReviewTask, output: Output, review: Review, may_decide: bool, now: datetime, level: int
) -> tuple[bool, bool]:
    """The ORM path: insert the review, mark the task done, read the rows the rule needs, write its outcome."""
    _review_insert(review)
    task.status = TaskStatus.DONE
    task.save(update_fields=["status"])
    if not may_decide:
        return False, False
    tasks = list(
        ReviewTask.objects.for_tenant(tenant).filter(output=output).exclude(pk=task.pk).values_list("purpose", "status")
    )
    others = [status for purpose, status in tasks if purpose in APPROVAL_PURPOSES]
    # An approval beside a reviewed overlap task: the two are compared (adjudication).
    overlap_reviewed = task.purpose == TaskPurpose.APPROVAL and (TaskPurpose.OVERLAP, TaskStatus.DONE) in tasks
    # Earlier approval reviews exist only beside other approval tasks: a task is reviewed
    # to done once, and an escalation on this task corrects nothing.
    earlier = (
        [
            ReviewRow(*row)
            for row in Review.objects.for_tenant(tenant)
            .filter(output=output, purpose__in=APPROVAL_PURPOSES, decision=Review.Verdict.CORRECT)
            .exclude(pk=review.pk)
            .values_list("decision", "corrected_output", "created_at")
        ]
        if others
        else []
    )
    outcome = output_outcome(
        review=_review_row(review),
        submitted_output=output.output,
        other_approval_statuses=others,
        earlier_approval_reviews=earlier,
    )
    if outcome is None:
        return False, overlap_reviewed
    judge_failed = outcome.decision != Decision.REJECTED and _failing_judges(tenant, output).exists()
    second_look = second_look_level(
        outcome=outcome,
        judge_failed=judge_failed,
        second_look_exists=judge_failed
        and ReviewTask.objects.for_tenant(tenant).filter(output=output, purpose=TaskPurpose.CONFLICT).exists(),
        reviewer_level=level,
    )
    if second_look is not None:
        _second_look_create(tenant, task, output, review, second_look, now)
        return False, overlap_reviewed
    _decision_apply(output, outcome, review, now)
    output.save(update_fields=["decision", "status", "final_output", "delivery", "decided_by", "decided_at"])
    if outcome.cancels_open_tasks:
        ReviewTask.objects.for_tenant(tenant).filter(
            output=output, status__in=[TaskStatus.PENDING, TaskStatus.CLAIMED]
        ).exclude(purpose=TaskPurpose.OVERLAP).update(
            status=TaskStatus.CANCELLED, claimed_by=None, claimed_at=None, lease_expires_at=None
        )
    webhook_deliveries_create(tenant=tenant, output=output)
    return True, overlap_reviewed


def _failing_judges(tenant: Tenant, output: Output):
    """The verdicts that failed the output, of judges whose failure acts (not record-only ones)."""
    return (
        Judgement.objects.for_tenant(tenant)
        .filter(output=output, result=JudgementResult.FAIL)
        .exclude(judge__on_fail=JudgeOnFail.RECORD)
    )


def _second_look_create(
    tenant: Tenant, task: ReviewTask, output: Output, review: Review, level: int, now: datetime
) -> None:
    """A person approved what a judge failed: one more approval, by a reviewer a level up,
    in the same queue and under the same rubric and due time; the reason is on the task and
    the output."""
    failed = ", ".join(_failing_judges(tenant, output).order_by("judge__name").values_list("judge__name", flat=True))
    verdict = "approved" if review.decision == Review.Verdict.APPROVE else "corrected"
    why = (
        f"signals disagree: judge {failed} failed, a level {level - 1} reviewer {verdict}; "
        f"a level {level} reviewer decides"
    )
    ReviewTask.objects.for_tenant(tenant).create(
        output=output,
        queue_id=task.queue_id,
        purpose=TaskPurpose.CONFLICT,
        level_required=level,
        priority=task.priority,
        due_at=task.due_at,
        created_at=now,
        rubric_id=task.rubric_id,
        rubric_version=task.rubric_version,
        escalation_reason=why,
    )
    kept = output.keep_ingest_classification()
    output.decision_reason = f"{output.decision_reason}; {why}".lstrip("; ")
    output.save(update_fields=["decision_reason", *kept])


def _decision_apply(output: Output, outcome: Outcome, review: Review, now: datetime) -> None:
    output.decision = output.status = outcome.decision
    output.final_output = outcome.final_output
    output.delivery = outcome.delivery
    output.decided_by = review.reviewer
    output.decided_at = now


def _record_in_set_statements(
    tenant: Tenant,
    task: ReviewTask,
    output: Output,
    review: Review,
    may_decide: bool,
    now: datetime,
    level: int,
    reads: tuple,
) -> tuple[bool, bool]:
    """PostgreSQL: the rule decides on ``reads`` (``_rule_reads_sql``, read in the lock's round
    trip once the output's row lock was taken, so that they show every review committed before
    ours: two reviewers finishing the same output at once are serialised by that lock, and the
    second one decides). One statement inserts the review and marks the task done and, when the
    rule decides, writes the decision (and cancels on a reject).

    Where nothing later in the transaction reads what it writes, it goes with the COMMIT
    (``hitl.postgres``): the review is then two round trips, the lock's and the commit's. A
    duplicate review then fails the commit: ``review_submit`` answers it as a 409 either way.
    """
    db = connections[DEFAULT_DB_ALIAS]
    others, corrections, corrected_at, judge_failed, second_look_exists, overlap_reviewed = reads
    params = {
        key: field.get_db_prep_save(getattr(review, attname), db) if prepared else getattr(review, attname)
        for key, attname, field, prepared in _review_columns()
    }
    params["task"] = task.pk
    sql_record, sql_decide, sql_both = _set_statements()
    outcome = second_look = None
    if may_decide:
        earlier = [
            ReviewRow(Review.Verdict.CORRECT, text, at) for text, at in zip(corrections, corrected_at, strict=True)
        ]
        outcome = output_outcome(
            review=_review_row(review),
            submitted_output=output.output,
            other_approval_statuses=others,
            earlier_approval_reviews=earlier,
        )
        if outcome is not None:
            second_look = second_look_level(
                outcome=outcome, judge_failed=judge_failed, second_look_exists=second_look_exists, reviewer_level=level
            )
    decide = None
    if outcome is not None and second_look is None:
        decide = {
            "output": output.pk,
            "tenant": tenant.pk,
            "task": task.pk,
            "decision": outcome.decision,
            "final_output": outcome.final_output,
            "delivery": outcome.delivery,
            "user": review.reviewer_id,
            "now": now,
            "cancel": outcome.cancels_open_tasks,
        }
    # What runs after this in the transaction and reads the review: an adjudication (overlap),
    # a second look's task. Otherwise the writes wait for the COMMIT; with the decision, as one
    # statement (the usual review: one approval decides). A duplicate review fails the statement
    # (now or at the commit): review_submit answers it as a 409.
    read_later = overlap_reviewed or task.purpose == TaskPurpose.OVERLAP or second_look is not None
    if decide is not None and not read_later:
        if not db.hitl_execute_at_commit(sql_both, {**params, **decide}):
            db.hitl_pipeline([(sql_both, {**params, **decide})])
    else:
        if read_later or not db.hitl_execute_at_commit(sql_record, params):
            db.hitl_pipeline([(sql_record, params)])
        # Nothing later in the transaction reads what the decision writes, except an adjudication
        # opened after it (its new task must come after the cancelling): without one, the write
        # goes with the COMMIT (hitl.postgres), one round trip less while the output's row is locked.
        if decide is not None and (overlap_reviewed or not db.hitl_execute_at_commit(sql_decide, decide)):
            db.hitl_pipeline([(sql_decide, decide)])
    review._state.adding, review._state.db = False, db.alias
    task.status = TaskStatus.DONE
    if outcome is None:
        return False, overlap_reviewed
    if second_look is not None:
        _second_look_create(tenant, task, output, review, second_look, now)
        return False, overlap_reviewed
    _decision_apply(output, outcome, review, now)
    webhook_deliveries_create(tenant=tenant, output=output)
    return True, overlap_reviewed


@lru_cache(maxsize=1)
def _review_columns() -> tuple:
    """``(parameter, attname, field, prepared)`` of each column of a review: ``prepared`` unless
    the field is of a plain type whose Python value PostgreSQL takes as it is (a JSON field, or
    any field of a type not listed, such as an encrypted one, goes through its conversion)."""
    plain = (models.ForeignKey, models.UUIDField, models.CharField, models.TextField, models.PositiveIntegerField)
    plain += (models.DateTimeField,)
    return tuple(
        (f"review_{field.column}", field.attname, field, type(field) not in plain)
        for field in Review._meta.concrete_fields
    )


@lru_cache(maxsize=1)
def _rule_reads_sql() -> str:
    """What the decision rule reads of the task's output (``%(task)s``, ``%(tenant)s``): the
    other approval tasks' statuses, the earlier corrections and when they were made, whether a
    blocking judge failed it, whether a second look exists, and whether this is an approval
    beside an overlap review (the two are then compared: adjudication). Neither this review nor
    this task's new status shows: the rule is handed both."""
    quote = connection.ops.quote_name
    review, task, judgement, judge = (quote(model._meta.db_table) for model in (Review, ReviewTask, Judgement, Judge))
    approval = ", ".join(f"'{purpose.value}'" for purpose in APPROVAL_PURPOSES)
    corrected = f"r.decision = '{Review.Verdict.CORRECT.value}'"
    return f"""
        WITH mine AS (SELECT output_id, purpose FROM {task} WHERE id = %(task)s AND tenant_id = %(tenant)s)
        SELECT
            ARRAY(SELECT t.status FROM {task} t
                  WHERE t.tenant_id = %(tenant)s AND t.output_id = (SELECT output_id FROM mine)
                    AND t.purpose IN ({approval}) AND t.id <> %(task)s),
            ARRAY(SELECT r.corrected_output FROM {review} r
                  WHERE r.tenant_id = %(tenant)s AND r.output_id = (SELECT output_id FROM mine)
                    AND r.purpose IN ({approval}) AND {corrected} ORDER BY r.created_at),
            ARRAY(SELECT r.created_at FROM {review} r
                  WHERE r.tenant_id = %(tenant)s AND r.output_id = (SELECT output_id FROM mine)
                    AND r.purpose IN ({approval}) AND {corrected} ORDER BY r.created_at),
            EXISTS(SELECT 1 FROM {judgement} j JOIN {judge} jd ON jd.id = j.judge_id
                   WHERE j.tenant_id = %(tenant)s AND j.output_id = (SELECT output_id FROM mine)
                     AND j.result = '{JudgementResult.FAIL.value}' AND jd.on_fail <> '{JudgeOnFail.RECORD.value}'),
            EXISTS(SELECT 1 FROM {task} t
                   WHERE t.tenant_id = %(tenant)s AND t.output_id = (SELECT output_id FROM mine)
                     AND t.purpose = '{TaskPurpose.CONFLICT.value}'),
            COALESCE((SELECT purpose FROM mine) = '{TaskPurpose.APPROVAL.value}' AND EXISTS(SELECT 1 FROM {review} r
                   WHERE r.tenant_id = %(tenant)s AND r.output_id = (SELECT output_id FROM mine)
                     AND r.purpose = '{TaskPurpose.OVERLAP.value}'), false)"""  # noqa: S608 (names from meta)


@lru_cache(maxsize=1)
def _set_statements() -> tuple[str, str, str]:
    """The review's writes (the review row, its task done), the decision's, and both in one
    statement (their parameters' names are distinct, ``task`` aside, which both take alike)."""
    quote = connection.ops.quote_name
    review, task, output = (quote(model._meta.db_table) for model in (Review, ReviewTask, Output))
    fields = Review._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(f"%(review_{field.column})s" for field in fields)
    insert = f"INSERT INTO {review} ({columns}) VALUES ({values}) RETURNING 1"  # noqa: S608 (names from meta)
    done = f"UPDATE {task} SET status = '{TaskStatus.DONE.value}' WHERE id = %(task)s"  # noqa: S608
    decided = f"""decided AS (
            UPDATE {output} SET decision = %(decision)s, status = %(decision)s, final_output = %(final_output)s,
                delivery = %(delivery)s, decided_by_id = %(user)s, decided_at = %(now)s
            WHERE id = %(output)s AND tenant_id = %(tenant)s AND decision = ''
            RETURNING 1
        )"""  # noqa: S608 (names from model meta)
    cancel = f"""
        UPDATE {task} SET status = '{TaskStatus.CANCELLED.value}', claimed_by_id = NULL, claimed_at = NULL,
            lease_expires_at = NULL
        WHERE %(cancel)s AND tenant_id = %(tenant)s AND output_id = %(output)s AND id <> %(task)s
          AND status IN ('{TaskStatus.PENDING.value}', '{TaskStatus.CLAIMED.value}')
          AND purpose <> '{TaskPurpose.OVERLAP.value}'
          AND EXISTS (SELECT 1 FROM decided)"""  # noqa: S608 (names from model meta, values from enums)
    record = f"WITH inserted AS ({insert}) {done}"
    decide = f"WITH {decided}{cancel}"
    # Every data-modifying CTE runs, in one snapshot: the task done and the others cancelled are
    # distinct rows (``id <> %(task)s``), and the output's row and this task's were locked first.
    both = f"WITH inserted AS ({insert}), done AS ({done} RETURNING 1), {decided}{cancel}"
    return record, decide, both
