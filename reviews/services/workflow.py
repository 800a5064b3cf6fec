"""The review loop: queues, tasks created at ingest, leased claims, reviews, escalation,
multi-level approval and the final decision, written once."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from hitl.db import bulk_insert
from hitl.errors import (
    ApplicationError,
    ConflictError,
    DomainValidationError,
    ForbiddenError,
    NotFoundError,
    fields_message,
)
from policies.engine import Decision as PolicyDecision
from policies.models import Rubric
from policies.schemas import Criterion
from policies.selectors import compiled_policy
from reviews.models import (
    Decision,
    Feedback,
    Output,
    OutputStatus,
    Queue,
    Review,
    ReviewTask,
    TaskPurpose,
    TaskStatus,
)
from reviews.routing import PlannedTask, plan_tasks, routing_table
from reviews.services.webhooks import webhook_deliveries_create
from tenants.models import Membership, Tenant
from tenants.services import tenant_config_changed

TASK_FIELDS = (
    "id",
    "tenant",
    "output",
    "queue",
    "purpose",
    "status",
    "level_required",
    "priority",
    "due_at",
    "created_at",
    "rubric",
    "rubric_version",
)


# Queues -------------------------------------------------------------------


def _string_list(value, field: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise DomainValidationError(
            f"{field}: a list of names", fields={field: ["Must be a list of non-empty strings."]}
        )
    return list(value)


@transaction.atomic
def queue_create(
    *,
    tenant: Tenant,
    name: str,
    tiers=(),
    applications=(),
    required_skills=(),
    min_reviewer_level: int = 1,
    priority: int = 0,
) -> Queue:
    if not name or len(name) > 100:
        raise DomainValidationError("name: 1 to 100 characters", fields={"name": ["1 to 100 characters."]})
    if not 1 <= min_reviewer_level <= 3:
        raise DomainValidationError("min_reviewer_level: 1, 2 or 3", fields={"min_reviewer_level": ["1, 2 or 3."]})
    if Queue.objects.for_tenant(tenant).filter(name=name).exists():
        raise DomainValidationError(f"name: a queue '{name}' exists", fields={"name": ["Already exists."]})
    queue = Queue.objects.for_tenant(tenant).create(
        name=name,
        tiers=_string_list(tiers, "tiers"),
        applications=_string_list(applications, "applications"),
        required_skills=_string_list(required_skills, "required_skills"),
        min_reviewer_level=min_reviewer_level,
        priority=priority,
    )
    tenant_config_changed(tenant=tenant)
    return queue


@transaction.atomic
def queue_update(*, queue: Queue, **changes) -> Queue:
    """Change a queue's routing or requirements; new outputs route by it from the next request."""
    allowed = {"tiers", "applications", "required_skills", "min_reviewer_level", "priority"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainValidationError(
            f"cannot change {', '.join(sorted(unknown))}", fields={key: ["Not changeable."] for key in unknown}
        )
    for key in ("tiers", "applications", "required_skills"):
        if key in changes:
            changes[key] = _string_list(changes[key], key)
    if "min_reviewer_level" in changes and not 1 <= changes["min_reviewer_level"] <= 3:
        raise DomainValidationError("min_reviewer_level: 1, 2 or 3", fields={"min_reviewer_level": ["1, 2 or 3."]})
    for key, value in changes.items():
        setattr(queue, key, value)
    queue.save(update_fields=list(changes))
    tenant_config_changed(tenant=queue.tenant)
    return queue


@transaction.atomic
def queue_grant(*, queue: Queue, user) -> None:
    """Let a member work a queue (a django-guardian object permission)."""
    membership = Membership.objects.for_tenant(queue.tenant).filter(user=user).first()
    if membership is None or membership.role not in ("reviewer", "admin"):
        raise DomainValidationError(
            "user: only reviewers and admins of the tenant work queues",
            fields={"user": ["Not a reviewer of this tenant."]},
        )
    assign_perm("reviews.work_queue", user, queue)
    tenant_config_changed(tenant=queue.tenant)


@transaction.atomic
def queue_revoke(*, queue: Queue, user) -> None:
    remove_perm("reviews.work_queue", user, queue)
    tenant_config_changed(tenant=queue.tenant)


# Tasks at ingest ----------------------------------------------------------


def tasks_create(*, tenant: Tenant, planned: list[tuple[object, PlannedTask]], now: datetime) -> None:
    """Insert the planned tasks of many outputs in one statement (ingest's hot path)."""
    rows = [
        (
            ReviewTask._meta.pk.default(),
            tenant.pk,
            output_id,
            task.queue_id,
            task.purpose,
            TaskStatus.PENDING.value,
            task.level_required,
            task.priority,
            task.due_at,
            now,
            task.rubric_id,
            task.rubric_version,
        )
        for output_id, task in planned
    ]
    bulk_insert(ReviewTask, TASK_FIELDS, rows)


# Claims -------------------------------------------------------------------


@dataclass(frozen=True)
class Reviewer:
    """A person acting as reviewer in one tenant: their level, skills and workable queues."""

    user_id: int
    level: int
    queue_ids: tuple[int, ...]


def reviewer_for(*, tenant: Tenant, user, queue_name: str | None = None) -> Reviewer:
    """The reviewer's level and workable queues, cached per configuration token.

    Memberships, queues and queue permissions change the token (services, and the
    admin through them), so a claim needs no query to know who is claiming.
    """
    reviewer = _reviewer(tenant.pk, str(tenant.config_token), user.pk, queue_name)
    if reviewer is None:
        raise ForbiddenError("Only reviewers and admins of this tenant review.")
    return reviewer


@lru_cache(maxsize=4096)
def _reviewer(tenant_id: int, config_token: str, user_id: int, queue_name: str | None) -> Reviewer | None:
    tenant = Tenant(pk=tenant_id)
    membership = (
        Membership.objects.for_tenant(tenant).filter(user_id=user_id).values("role", "reviewer_level", "skills").first()
    )
    if membership is None or membership["role"] not in ("reviewer", "admin"):
        return None
    skills = set(membership["skills"] or ())
    queues = Queue.objects.for_tenant(tenant).filter(
        Q(queueuserobjectpermission__user_id=user_id, queueuserobjectpermission__permission__codename="work_queue")
        | Q(
            queuegroupobjectpermission__group__user=user_id,
            queuegroupobjectpermission__permission__codename="work_queue",
        )
    )
    if queue_name is not None:
        queues = queues.filter(name=queue_name)
    workable = tuple(
        sorted(
            queue["id"]
            for queue in queues.values("id", "required_skills", "min_reviewer_level").distinct()
            if set(queue["required_skills"] or ()) <= skills
            and queue["min_reviewer_level"] <= membership["reviewer_level"]
        )
    )
    return Reviewer(user_id=user_id, level=membership["reviewer_level"], queue_ids=workable)


_CLAIM_COLUMNS = (
    "id",
    "output_id",
    "queue_id",
    "purpose",
    "status",
    "level_required",
    "due_at",
    "lease_expires_at",
    "escalation_reason",
    "rubric_id",
    "rubric_version",
)
_OUTPUT_COLUMNS = (
    "external_id",
    "application",
    "input",
    "output",
    "trace",
    "metadata",
    "model",
    "confidence",
    "risk_tier",
    "policy_version",
    "decision_reason",
    "received_at",
)


@lru_cache(maxsize=64)
def _claim_sql(vendor: str, queue_count: int, *, with_details: bool = False) -> str:
    """The claim: one UPDATE of the most urgent pending task, skipping rows others are claiming.

    On PostgreSQL ``with_details`` wraps it in a CTE that also returns the output,
    queue and rubric the reviewer needs, still one statement.
    """
    quote = connection.ops.quote_name
    task = quote(ReviewTask._meta.db_table)
    review = quote(Review._meta.db_table)
    if vendor == "postgresql":
        queue_filter, lock = "t.queue_id = ANY(%s)", "FOR UPDATE SKIP LOCKED"
    else:  # SQLite serialises writers: no row locks needed
        queue_filter, lock = f"t.queue_id IN ({', '.join(['%s'] * queue_count)})", ""
    update = f"""
        UPDATE {task} SET status = 'claimed', claimed_by_id = %s, claimed_at = %s, lease_expires_at = %s
        WHERE id = (
            SELECT t.id FROM {task} t
            WHERE t.tenant_id = %s AND t.status = 'pending' AND {queue_filter} AND t.level_required <= %s
              AND NOT EXISTS (SELECT 1 FROM {review} r WHERE r.output_id = t.output_id AND r.reviewer_id = %s)
              AND NOT EXISTS (
                  SELECT 1 FROM {task} mine
                  WHERE mine.output_id = t.output_id AND mine.status = 'claimed' AND mine.claimed_by_id = %s)
            ORDER BY t.due_at, t.priority DESC, t.created_at
            LIMIT 1 {lock})"""  # noqa: S608 (table names from model meta)
    if not with_details:
        return update + " RETURNING id"
    output = quote(Output._meta.db_table)
    queue = quote(Queue._meta.db_table)
    rubric = quote(Rubric._meta.db_table)
    returning = ", ".join(_CLAIM_COLUMNS)
    selected = ", ".join(
        [f"c.{column}" for column in _CLAIM_COLUMNS]
        + ["q.name", "r.name"]
        + [f"o.{column}" for column in _OUTPUT_COLUMNS]
    )
    return f"""
        WITH c AS ({update} RETURNING {returning})
        SELECT {selected} FROM c
        JOIN {queue} q ON q.id = c.queue_id
        JOIN {output} o ON o.id = c.output_id
        LEFT JOIN {rubric} r ON r.id = c.rubric_id"""  # noqa: S608


def _claimed_from_row(row) -> dict:
    task = dict(zip(_CLAIM_COLUMNS, row[: len(_CLAIM_COLUMNS)], strict=True))
    queue_name, rubric_name = row[len(_CLAIM_COLUMNS)], row[len(_CLAIM_COLUMNS) + 1]
    output = dict(zip(_OUTPUT_COLUMNS, row[len(_CLAIM_COLUMNS) + 2 :], strict=True))
    for column in ("input", "trace", "metadata"):  # Django's connection hands jsonb back as text
        if isinstance(output[column], str):
            output[column] = orjson.loads(output[column])
    output["id"] = task["output_id"]
    return {**task, "queue": queue_name, "rubric_name": rubric_name, "output": output}


def task_details(*, tenant: Tenant, task_id) -> dict:
    """A task as the reviewer sees it: with its output, queue and rubric."""
    task = ReviewTask.objects.for_tenant(tenant).select_related("output", "queue", "rubric").filter(pk=task_id).first()
    if task is None:
        raise NotFoundError("Task not found.")
    details = {column: getattr(task, column) for column in _CLAIM_COLUMNS}
    details["output"] = {column: getattr(task.output, column) for column in _OUTPUT_COLUMNS}
    details["output"]["id"] = task.output_id
    details.update(queue=task.queue.name, rubric_name=task.rubric.name if task.rubric_id else None)
    return details


def task_claim(*, tenant: Tenant, reviewer: Reviewer, now: datetime | None = None) -> dict | None:
    """Lease the most urgent task the reviewer may work: one statement, never a task two people hold.

    Returns the task with its output, queue and rubric name, or None.
    """
    if not reviewer.queue_ids:
        return None
    now = now or timezone.now()
    expires = now + timedelta(seconds=settings.HITL_LEASE_SECONDS)
    vendor = connection.vendor
    queues = [list(reviewer.queue_ids)] if vendor == "postgresql" else list(reviewer.queue_ids)
    params = [reviewer.user_id, now, expires, tenant.pk, *queues, reviewer.level, reviewer.user_id, reviewer.user_id]
    if vendor != "postgresql":
        params[1] = connection.ops.adapt_datetimefield_value(now)
        params[2] = connection.ops.adapt_datetimefield_value(expires)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_claim_sql(vendor, len(reviewer.queue_ids)), params)
            row = cursor.fetchone()
        return task_details(tenant=tenant, task_id=ReviewTask._meta.pk.to_python(row[0])) if row else None
    # PostgreSQL: one autocommitted statement claims and returns everything the reviewer sees.
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(vendor, len(reviewer.queue_ids), with_details=True), params)
        row = cursor.fetchone()
    return _claimed_from_row(row) if row else None


def _task_for_update(tenant: Tenant, task_id) -> ReviewTask:
    task = ReviewTask.objects.for_tenant(tenant).select_for_update().filter(pk=task_id).first()
    if task is None:
        raise NotFoundError("Task not found.")
    return task


def _check_lease(task: ReviewTask, user, now: datetime) -> None:
    if task.status != TaskStatus.CLAIMED or task.claimed_by_id != user.pk:
        raise ConflictError("This task is not leased to you; claim a task first.", code="not_lease_holder")
    if task.lease_expires_at <= now:
        raise ConflictError(
            f"Your lease on this task expired at {task.lease_expires_at.isoformat()}; claim again.",
            code="lease_expired",
        )


@transaction.atomic
def task_release(*, tenant: Tenant, user, task_id) -> ReviewTask:
    """Give a claimed task back to its queue."""
    task = _task_for_update(tenant, task_id)
    if task.status != TaskStatus.CLAIMED or task.claimed_by_id != user.pk:
        raise ConflictError("This task is not leased to you.", code="not_lease_holder")
    task.status, task.claimed_by, task.claimed_at, task.lease_expires_at = TaskStatus.PENDING, None, None, None
    task.save(update_fields=["status", "claimed_by", "claimed_at", "lease_expires_at"])
    return task


def tasks_release_expired(*, now: datetime | None = None) -> int:
    """Return every task whose lease ran out to its queue (periodic; all tenants by design)."""
    now = now or timezone.now()
    return ReviewTask.unscoped.filter(status=TaskStatus.CLAIMED, lease_expires_at__lt=now).update(
        status=TaskStatus.PENDING, claimed_by=None, claimed_at=None, lease_expires_at=None
    )


# Reviews and decisions ----------------------------------------------------


def rubric_criteria(*, rubric_id: int | None, version: int | None) -> list[dict] | None:
    """The criteria of a rubric exactly as they were at ``version``."""
    if rubric_id is None:
        return None
    record = Rubric.history.filter(id=rubric_id, version=version).order_by("-history_date").values("criteria").first()
    return record["criteria"] if record else None


def scores_validate(*, criteria: list[dict] | None, scores, decision: str) -> dict:
    """Scores against the rubric version the task was created with; errors name ``scores.<key>``."""
    if scores is None:
        scores = {}
    if not isinstance(scores, dict):
        raise DomainValidationError("scores: must be an object", fields={"scores": ["Must be an object."]})
    if criteria is None:
        if scores:
            raise DomainValidationError("scores: this task has no rubric", fields={"scores": ["No rubric: no scores."]})
        return {}
    fields: dict[str, list[str]] = {}
    known = {}
    for raw in criteria:
        criterion = Criterion.model_validate(raw)
        known[criterion.key] = criterion
        value = scores.get(criterion.key)
        path = f"scores.{criterion.key}"
        if value is None:
            if criterion.required and decision != "escalate":
                fields[path] = [f"Required by the rubric ({criterion.label})."]
            continue
        if criterion.kind == "binary" and not isinstance(value, bool):
            fields[path] = ["Must be true or false."]
        elif criterion.kind == "graded" and (
            isinstance(value, bool) or not isinstance(value, int) or not criterion.min <= value <= criterion.max
        ):
            fields[path] = [f"Must be a whole number from {criterion.min} to {criterion.max}."]
        elif criterion.kind == "categorical" and value not in criterion.options:
            fields[path] = [f"Must be one of: {', '.join(criterion.options)}."]
        elif criterion.kind == "text" and (not isinstance(value, str) or len(value) > 10_000):
            fields[path] = ["Must be text of at most 10,000 characters."]
    for key in scores:
        if key not in known:
            fields[f"scores.{key}"] = ["Not a criterion of this rubric."]
    if fields:
        raise DomainValidationError(fields_message(fields), fields=fields)
    return scores


@dataclass(frozen=True)
class ReviewOutcome:
    review: Review
    output: Output
    decided_now: bool


# The tasks whose approval a decision waits for (overlap tasks only measure agreement).
_COUNTED = (TaskPurpose.APPROVAL, TaskPurpose.USER_FEEDBACK)
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


def _task_and_output_for_update(tenant: Tenant, task_id) -> ReviewTask:
    """The task with its output, both locked by one statement: the output's row first.

    Every path that decides locks the output before its tasks (a reject cancels the
    output's other tasks), so the reverse order could deadlock. PostgreSQL takes the
    row locks of ``FOR UPDATE OF`` in the order the tables are named there
    (``tests/reviews/test_claim_concurrency.py`` checks it). Plain SQL, not the ORM:
    compiling this join with ``select_related`` and ``only`` cost more CPU than the
    rest of a review.
    """
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: each use of the proxy is a thread-local lookup
    sql, task_fields, output_fields, columns = _task_and_output_sql(db.vendor)
    with db.cursor() as cursor:
        cursor.execute(sql, [ReviewTask._meta.pk.get_db_prep_value(task_id, db), tenant.pk, tenant.pk])
        row = cursor.fetchone()
    if row is None:
        raise NotFoundError("Task not found.")
    row = _converted(db, row, columns)
    task = ReviewTask.from_db(db.alias, [field.attname for field in task_fields], row[: len(task_fields)])
    output = Output.from_db(db.alias, [field.attname for field in output_fields], row[len(task_fields) :])
    task.output = output
    return task


@lru_cache(maxsize=4)
def _task_and_output_sql(vendor: str) -> tuple[str, tuple, tuple, tuple]:
    quote = connection.ops.quote_name
    task_fields = tuple(field for field in ReviewTask._meta.concrete_fields if field.name in _TASK_FIELDS_REVIEWED)
    output_fields = tuple(field for field in Output._meta.concrete_fields if field.name in _DECISION_FIELDS)
    columns = ", ".join(
        [f"t.{quote(field.column)}" for field in task_fields] + [f"o.{quote(field.column)}" for field in output_fields]
    )
    lock = "FOR UPDATE OF o, t" if vendor == "postgresql" else ""  # SQLite serialises writers
    sql = f"""
        SELECT {columns} FROM {quote(ReviewTask._meta.db_table)} t
        JOIN {quote(Output._meta.db_table)} o ON o.id = t.output_id
        WHERE t.id = %s AND t.tenant_id = %s AND o.tenant_id = %s {lock}"""  # noqa: S608 (names from model meta)
    columns = tuple(field.get_col(field.model._meta.db_table) for field in (*task_fields, *output_fields))
    return sql, task_fields, output_fields, columns


def _converted(db, row, columns) -> list:
    """The database's values as the ORM would hand them back (SQLite's text dates and UUIDs)."""
    values = list(row)
    for position, column in enumerate(columns):
        for converter in (*db.ops.get_db_converters(column), *column.get_db_converters(db)):
            values[position] = converter(values[position], column, db)
    return values


@transaction.atomic
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
    now = timezone.now()
    task = _task_and_output_for_update(tenant, task_id)
    output = task.output
    _check_lease(task, user, now)
    # The lease is not a licence: the person must still be allowed this queue and level.
    reviewer = _reviewer(tenant.pk, str(tenant.config_token), user.pk, None)
    if reviewer is None or task.queue_id not in reviewer.queue_ids or task.level_required > reviewer.level:
        raise ForbiddenError("You may no longer review tasks of this queue or level.")
    if decision not in Review.Verdict.values:
        raise DomainValidationError(
            f"decision: one of {', '.join(Review.Verdict.values)}", fields={"decision": ["Unknown decision."]}
        )
    if decision == Review.Verdict.CORRECT and not corrected_output:
        raise DomainValidationError(
            "corrected_output: required when the decision is correct", fields={"corrected_output": ["Required."]}
        )
    if decision != Review.Verdict.CORRECT and corrected_output:
        raise DomainValidationError(
            "corrected_output: only with the decision correct", fields={"corrected_output": ["Only for correct."]}
        )
    if decision == Review.Verdict.ESCALATE:
        if not comment:
            raise DomainValidationError(
                "comment: say why you escalate", fields={"comment": ["Required when escalating."]}
            )
        escalated_level = max(task.level_required, reviewer.level) + 1  # always above the one escalating
        if escalated_level > 3:
            raise ApplicationError("Nobody ranks above your level to escalate to.", code="cannot_escalate")
    criteria = rubric_criteria(rubric_id=task.rubric_id, version=task.rubric_version)
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
        return ReviewOutcome(review, output, decided_now=False)

    if connection.vendor == "postgresql":
        decided_now = _review_record_in_one_statement(tenant, task, output, review, may_decide, now)
        return ReviewOutcome(review, output, decided_now)
    _review_insert(review)
    task.status = TaskStatus.DONE
    task.save(update_fields=["status"])
    decided_now = may_decide and _decide_if_complete(tenant, output, review, now)
    return ReviewOutcome(review, output, decided_now)


def _review_insert(review: Review) -> None:
    try:
        # No savepoint: on a duplicate the whole review is refused and rolled back anyway.
        review.save(force_insert=True)
    except IntegrityError as error:
        raise ConflictError("You already reviewed this output.", code="already_reviewed") from error


def _decide_if_complete(tenant: Tenant, output: Output, review: Review, now: datetime) -> bool:
    """Any reject decides reject; otherwise the output is decided once every approval task
    is done, each by a distinct reviewer (the database enforces that) approving or correcting.

    The portable path (SQLite); ``_review_record_in_one_statement`` is the same on PostgreSQL.
    """
    if review.decision == Review.Verdict.REJECT:
        _write_decision(tenant, output, Decision.REJECTED, None, review.reviewer, now)
        return True
    # An approval task is done only through an approve or a correct (a reject decided
    # above, an escalation sends it back to the queue), so "all done" means "all approved".
    tally = (
        ReviewTask.objects.for_tenant(tenant)
        .filter(output=output, purpose__in=_COUNTED)
        .exclude(status=TaskStatus.CANCELLED)
        .aggregate(needed=Count("id"), done=Count("id", filter=Q(status=TaskStatus.DONE)))
    )
    if tally["done"] < tally["needed"]:
        return False
    if tally["needed"] == 1:  # this review was the only approval
        corrections = [review.corrected_output] if review.decision == Review.Verdict.CORRECT else []
    else:
        corrections = list(
            Review.objects.for_tenant(tenant)
            .filter(output=output, purpose__in=_COUNTED, decision=Review.Verdict.CORRECT)
            .order_by("created_at")
            .values_list("corrected_output", flat=True)
        )
    if corrections:
        _write_decision(tenant, output, Decision.CORRECTED, corrections[-1], review.reviewer, now)
    else:
        _write_decision(tenant, output, Decision.APPROVED, output.output, review.reviewer, now)
    return True


def _write_decision(tenant: Tenant, output: Output, decision: str, final_output, user, now: datetime) -> None:
    if output.decision:  # written once
        return
    output.decision = decision
    output.status = decision
    output.final_output = final_output
    output.delivery = "block" if decision == Decision.REJECTED else "deliver"
    output.decided_by = user
    output.decided_at = now
    output.save(update_fields=["decision", "status", "final_output", "delivery", "decided_by", "decided_at"])
    if decision == Decision.REJECTED:
        # Open approval tasks have nothing left to decide (after approvals none is open);
        # overlap tasks stay, to measure agreement.
        ReviewTask.objects.for_tenant(tenant).filter(
            output=output, status__in=[TaskStatus.PENDING, TaskStatus.CLAIMED]
        ).exclude(purpose=TaskPurpose.OVERLAP).update(
            status=TaskStatus.CANCELLED, claimed_by=None, claimed_at=None, lease_expires_at=None
        )
    webhook_deliveries_create(tenant=tenant, output=output)


def _review_record_in_one_statement(
    tenant: Tenant, task: ReviewTask, output: Output, review: Review, may_decide: bool, now: datetime
) -> bool:
    """PostgreSQL: what the portable path does in four to six statements, in one.

    Inserts the review, marks the task done, and, when ``may_decide``, tallies the
    approvals, picks the latest correction and writes the decision (cancelling the
    output's open approval tasks on a reject). Returns whether it decided.
    """
    db = connections[DEFAULT_DB_ALIAS]
    params = {
        f"review_{field.column}": field.get_db_prep_save(getattr(review, field.attname), db)
        for field in Review._meta.concrete_fields
    }
    params.update(
        task=task.pk,
        output=output.pk,
        tenant=tenant.pk,
        verdict=review.decision,
        corrected=review.corrected_output,
        now=now,
        user=review.reviewer_id,
        may_decide=may_decide,
    )
    try:
        with db.cursor() as cursor:
            cursor.execute(_review_record_sql(), params)
            row = cursor.fetchone()
    except IntegrityError as error:  # no savepoint, as in _review_insert
        raise ConflictError("You already reviewed this output.", code="already_reviewed") from error
    review._state.adding, review._state.db = False, db.alias
    task.status = TaskStatus.DONE
    if row is None:
        return False
    output.decision = output.status = row[0]
    output.final_output = row[1]
    output.delivery = "block" if row[0] == Decision.REJECTED else "deliver"
    output.decided_by = review.reviewer
    output.decided_at = now
    webhook_deliveries_create(tenant=tenant, output=output)
    return True


@lru_cache(maxsize=1)
def _review_record_sql() -> str:
    quote = connection.ops.quote_name
    review, task, output = (quote(model._meta.db_table) for model in (Review, ReviewTask, Output))
    fields = Review._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(f"%(review_{field.column})s" for field in fields)
    counted = ", ".join(f"'{purpose.value}'" for purpose in _COUNTED)
    return f"""
        WITH inserted AS (
            INSERT INTO {review} ({columns}) VALUES ({values}) RETURNING 1
        ), done AS (
            UPDATE {task} SET status = '{TaskStatus.DONE.value}' WHERE id = %(task)s RETURNING 1
        ), tally AS (
            -- The whole statement reads one snapshot, taken before its own writes:
            -- the task under review still reads as claimed, and counts as done.
            SELECT count(*) AS needed,
                   count(*) FILTER (WHERE t.status = '{TaskStatus.DONE.value}' OR t.id = %(task)s) AS done
            FROM {task} t
            WHERE t.tenant_id = %(tenant)s AND t.output_id = %(output)s AND t.purpose IN ({counted})
              AND t.status <> '{TaskStatus.CANCELLED.value}'
        ), correction AS (
            -- The latest correction: this review's, and the earlier approvals' when there were several.
            SELECT c.corrected_output FROM (
                SELECT %(corrected)s::text AS corrected_output, %(now)s::timestamptz AS created_at
                WHERE %(verdict)s::text = '{Review.Verdict.CORRECT.value}'
                UNION ALL
                SELECT r.corrected_output, r.created_at FROM {review} r
                WHERE r.tenant_id = %(tenant)s AND r.output_id = %(output)s AND r.purpose IN ({counted})
                  AND r.decision = '{Review.Verdict.CORRECT.value}' AND (SELECT needed FROM tally) > 1
            ) c
            ORDER BY c.created_at DESC LIMIT 1
        ), verdict AS (
            SELECT CASE
                WHEN %(verdict)s::text = '{Review.Verdict.REJECT.value}' THEN '{Decision.REJECTED.value}'
                WHEN EXISTS (SELECT 1 FROM correction) THEN '{Decision.CORRECTED.value}'
                ELSE '{Decision.APPROVED.value}'
            END AS decision
        ), decided AS (
            UPDATE {output} o SET
                decision = v.decision,
                status = v.decision,
                final_output = CASE v.decision
                    WHEN '{Decision.REJECTED.value}' THEN NULL
                    WHEN '{Decision.CORRECTED.value}' THEN (SELECT corrected_output FROM correction)
                    ELSE o.output END,
                delivery = CASE v.decision WHEN '{Decision.REJECTED.value}' THEN 'block' ELSE 'deliver' END,
                decided_by_id = %(user)s,
                decided_at = %(now)s
            FROM verdict v
            WHERE o.id = %(output)s AND o.tenant_id = %(tenant)s AND o.decision = '' AND %(may_decide)s
              AND (v.decision = '{Decision.REJECTED.value}' OR (SELECT done >= needed FROM tally))
            RETURNING o.decision, o.final_output
        ), cancelled AS (
            -- A reject leaves the open approval tasks nothing to decide; overlap tasks stay.
            UPDATE {task} SET status = '{TaskStatus.CANCELLED.value}', claimed_by_id = NULL, claimed_at = NULL,
                lease_expires_at = NULL
            WHERE tenant_id = %(tenant)s AND output_id = %(output)s AND id <> %(task)s
              AND status IN ('{TaskStatus.PENDING.value}', '{TaskStatus.CLAIMED.value}')
              AND purpose <> '{TaskPurpose.OVERLAP.value}'
              AND EXISTS (SELECT 1 FROM decided WHERE decision = '{Decision.REJECTED.value}')
            RETURNING 1
        )
        SELECT decision, final_output FROM decided"""  # noqa: S608 (names from model meta, values from enums)


# Feedback -----------------------------------------------------------------


@transaction.atomic
def output_feedback_add(*, tenant: Tenant, output_id, rating: str, comment: str = "") -> tuple[Feedback, bool]:
    """Store end-user feedback; a thumbs-down on an output no person looked at creates a task."""
    output = Output.objects.for_tenant(tenant).select_for_update().filter(pk=output_id).first()
    if output is None:
        raise NotFoundError("Output not found.")
    feedback = Feedback.objects.for_tenant(tenant).create(output=output, rating=rating, comment=comment)
    if (
        rating != Feedback.Rating.DOWN
        or output.decision
        or output.status == OutputStatus.BLOCKED  # the stop button is not lifted by a review
        or output.status == OutputStatus.JUDGING  # the judges' completion takes the thumbs-down into account
        or ReviewTask.objects.for_tenant(tenant).filter(output=output).exists()
    ):
        return feedback, False
    policy = compiled_policy(tenant=tenant)
    routing = routing_table(tenant=tenant)
    tier = output.risk_tier if output.risk_tier in policy.tiers else policy.default_tier
    planned = plan_tasks(
        policy=policy,
        routing=routing,
        decision=PolicyDecision(tier, True, output.delivery, OutputStatus.PENDING_REVIEW, "", None, policy.version),
        application=output.application,
        external_id=output.external_id,
        received_at=timezone.now(),
        purpose=TaskPurpose.USER_FEEDBACK,
    )
    if not planned:
        return feedback, False
    tasks_create(tenant=tenant, planned=[(output.pk, task) for task in planned], now=timezone.now())
    output.status = OutputStatus.PENDING_REVIEW
    output.review_required = True
    output.decision_reason = f"{output.decision_reason}; user_feedback: thumbs-down".lstrip("; ")
    output.save(update_fields=["status", "review_required", "decision_reason"])
    return feedback, True
