"""Tasks: created at ingest in bulk, leased to one reviewer by a one-statement claim,
released by hand or when the lease runs out."""

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from hitl.cache import config_cache, weight_of
from hitl.db import bulk_insert
from hitl.errors import ConflictError, ForbiddenError, NotFoundError
from policies.models import Rubric
from reviews.models import Certification, CertificationStatus, Output, Queue, Review, ReviewTask, TaskStatus
from reviews.routing import PlannedTask
from reviews.selectors import CLAIMED_OUTPUT_COLUMNS, CLAIMED_TASK_COLUMNS, task_details
from tenants.audit import (
    SYSTEM,
    Actor,
    audit_append_cte,
    audit_chain_row_locking,
    audit_head_ensure,
    audit_record,
    audit_record_batch,
    request_actor,
)
from tenants.auditchain import digest, format_time, merkle_root
from tenants.models import Membership, Role, Tenant

# The partial unique index (reviews.models.ReviewTask) that keeps one person to one task of an output.
ONE_CLAIM_PER_OUTPUT = "task_one_claim_per_output_and_person"
# Each failed attempt means another claim of the same person committed meanwhile, so a
# person would need this many connections claiming at the same instant to see a 409.
CLAIM_ATTEMPTS = 8

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


def task_digest(row: tuple) -> str:
    """A new task's digest: its ``TASK_FIELDS`` but the tenant and status, ids as strings, times in UTC."""
    values = dict(zip(TASK_FIELDS, row, strict=True))
    return digest(
        {
            "id": str(values["id"]),
            "output": str(values["output"]),
            "queue": values["queue"],
            "purpose": values["purpose"],
            "level_required": values["level_required"],
            "priority": values["priority"],
            "due_at": None if values["due_at"] is None else format_time(values["due_at"]),
            "rubric": values["rubric"],
            "rubric_version": values["rubric_version"],
        }
    )


def tasks_commitment(rows: list[tuple]) -> dict:
    """What commits to new tasks inside another event (ingest's ``output.received``):
    ``root`` (Merkle root over ``task_digest``), ``count`` and ``ids``, in the rows' order."""
    ids = [str(row[0]) for row in rows]
    return {"root": merkle_root(task_digest(row) for row in rows), "count": len(ids), "ids": ids}


def tasks_audit(*, tenant: Tenant, rows: list[tuple], actor=None) -> None:
    """One ``task.created`` event committing to the tasks ``tasks_create`` inserted (in its rows' order)."""
    if rows:
        audit_record_batch(
            tenant=tenant,
            actor=actor,
            kind="task.created",
            object_type="task",
            digests=[(row[0], task_digest(row)) for row in rows],
        )


def tasks_create(
    *, tenant: Tenant, planned: list[tuple[object, PlannedTask]], now: datetime, audit: bool = True
) -> list[tuple]:
    """Insert the planned tasks of many outputs in one statement (ingest's hot path).

    Appends their ``task.created`` event unless ``audit`` is False: then the caller
    commits to them in its own event (ingest's ``output.received`` carries
    :func:`tasks_commitment`, so that a batch stays one event). Returns the rows inserted.
    """
    rows = tasks_build(tenant=tenant, planned=planned, now=now)
    bulk_insert(ReviewTask, TASK_FIELDS, rows)
    if audit:
        tasks_audit(tenant=tenant, rows=rows)
    return rows


def tasks_build(*, tenant: Tenant, planned: list[tuple[object, PlannedTask]], now: datetime) -> list[tuple]:
    """The rows (``TASK_FIELDS`` order) of new pending tasks, for a caller that writes them
    in a statement of its own (ingest's one output)."""
    return [
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


@dataclass(frozen=True)
class Reviewer:
    """A person acting as reviewer in one tenant: their level, skills and workable queues."""

    user_id: int
    level: int
    queue_ids: tuple[int, ...]
    # Those of ``queue_ids`` that require a certification: the claim hands out their tasks
    # only while the person holds a valid one (checked by the claim statement, never cached).
    gated_queue_ids: tuple[int, ...] = ()
    # Queue id to the share of claims that are gold items mixed into work (queues with one only).
    gold_rates: dict = field(default_factory=dict, hash=False, compare=False)


def reviewer_for(*, tenant: Tenant, user, queue_name: str | None = None) -> Reviewer:
    """The reviewer's level and workable queues, cached per configuration token.

    Memberships, queues and queue permissions change the token (services, and the
    admin through them), so a claim needs no query to know who is claiming.
    """
    reviewer = reviewer_rights(tenant.pk, str(tenant.config_token), user.pk, queue_name)
    if reviewer is None:
        raise ForbiddenError("Only reviewers and admins of this tenant review.")
    return reviewer


@config_cache("reviewer rights")
def reviewer_rights(
    tenant_id: int, config_token: str, user_id: int, queue_name: str | None
) -> tuple[Reviewer | None, int]:
    """The reviewer's rights as of ``config_token`` (None for someone who does not review here)."""
    tenant = Tenant(pk=tenant_id)
    membership = (
        Membership.objects.for_tenant(tenant).filter(user_id=user_id).values("role", "reviewer_level", "skills").first()
    )
    if membership is None or membership["role"] not in Role.reviewing():
        return None, 0
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
    rows = [
        queue
        for queue in queues.values(
            "id", "required_skills", "min_reviewer_level", "requires_certification", "gold_rate"
        ).distinct()
        if set(queue["required_skills"] or ()) <= skills and queue["min_reviewer_level"] <= membership["reviewer_level"]
    ]
    workable = tuple(sorted(queue["id"] for queue in rows))
    gated = tuple(sorted(queue["id"] for queue in rows if queue["requires_certification"]))
    rates = {queue["id"]: queue["gold_rate"] for queue in rows if queue["gold_rate"]}
    reviewer = Reviewer(
        user_id=user_id,
        level=membership["reviewer_level"],
        queue_ids=workable,
        gated_queue_ids=gated,
        gold_rates=rates,
    )
    return reviewer, weight_of(workable) + weight_of(gated) + weight_of(rates)


def certification_holds(*, tenant: Tenant, user_id: int, queue_id: int, now: datetime) -> bool:
    """Whether the person holds a valid certification for the queue now (what the claim's EXISTS asks)."""
    return (
        Certification.objects.for_tenant(tenant)
        .filter(
            user_id=user_id,
            queue_id=queue_id,
            status=CertificationStatus.ACTIVE,
            valid_from__lte=now,
            valid_until__gt=now,
        )
        .exists()
    )


@lru_cache(maxsize=64)
def _claim_sql(
    vendor: str, queue_count: int, *, with_details: bool = False, audit_cte: str = "", gated_count: int = 0
) -> str:
    """The claim: one UPDATE of the most urgent pending task, skipping rows others are claiming.

    A task personal to the claimant (a gold item of an exam or mixed into their work) comes
    first; else the most urgent shared one. The choice is a subquery of its own, so that the
    UPDATE compares ``id`` with one parameter: PostgreSQL then finds the row by its primary
    key. (``id = COALESCE(...)`` directly is an expression row-level security does not let
    under its filter: the UPDATE read the whole table, 455 ms a claim at 1,000,000 tasks.)
    Of a queue that requires certification (``gated_count`` of the queues), only while the
    claimant holds a valid one: an EXISTS on the certification's unique index, inside the
    statement. On PostgreSQL ``with_details``
    wraps it in a CTE that also returns the output, queue and rubric the reviewer needs,
    still one statement.
    """
    quote = connection.ops.quote_name
    task = quote(ReviewTask._meta.db_table)
    review = quote(Review._meta.db_table)
    certification = quote(Certification._meta.db_table)
    if vendor == "postgresql":
        queue_filter, lock = "t.queue_id = ANY(%s)", "FOR NO KEY UPDATE SKIP LOCKED"
        personal_filter = "p.queue_id = ANY(%s)"
        gated_filter = "t.queue_id = ANY(%s)"
        # OFFSET 0 keeps each NOT EXISTS a probe of the one candidate (an index lookup on
        # both columns) rather than an anti-join that reads every review, or every claimed
        # task, of the person first: a reviewer with 50,000 past reviews would otherwise
        # pay for all of them on each claim, whatever the statistics say.
        probe = "OFFSET 0"
    else:  # SQLite serialises writers: no row locks needed
        queue_filter, lock = f"t.queue_id IN ({', '.join(['%s'] * queue_count)})", ""
        personal_filter = f"p.queue_id IN ({', '.join(['%s'] * queue_count)})"
        gated_filter = f"t.queue_id IN ({', '.join(['%s'] * gated_count)})"
        probe = ""
    # A queue that requires certification: its tasks only while the person holds a valid
    # certification for it. The certified queues are read once a statement (an uncorrelated
    # subquery, an InitPlan on PostgreSQL, over the unique index (tenant, person, queue)), not
    # once a candidate task: a person not certified for a busy queue skips its tasks at the
    # cost of comparing a queue id.
    cert_filter = gated_filter.replace("t.queue_id", "cert.queue_id")
    certified = (
        f"""
              AND (NOT ({gated_filter}) OR t.queue_id IN (
                  SELECT cert.queue_id FROM {certification} cert
                  WHERE cert.tenant_id = %s AND cert.user_id = %s AND {cert_filter}
                    AND cert.status = 'active' AND cert.valid_from <= %s AND cert.valid_until > %s))"""  # noqa: S608
        if gated_count
        else ""
    )
    update = f"""
        UPDATE {task} SET status = 'claimed', claimed_by_id = %s, claimed_at = %s, lease_expires_at = %s
        WHERE id = (SELECT COALESCE((
            SELECT p.id FROM {task} p
            WHERE p.assigned_to_id = %s AND p.status = 'pending' AND p.tenant_id = %s AND {personal_filter}
            ORDER BY p.created_at
            LIMIT 1 {lock}), (
            SELECT t.id FROM {task} t
            WHERE t.tenant_id = %s AND t.status = 'pending' AND {queue_filter} AND t.level_required <= %s
              AND t.assigned_to_id IS NULL{certified}
              AND NOT EXISTS (
                  SELECT 1 FROM {review} r WHERE r.output_id = t.output_id AND r.reviewer_id = %s {probe})
              AND NOT EXISTS (
                  SELECT 1 FROM {task} mine
                  WHERE mine.output_id = t.output_id AND mine.status = 'claimed' AND mine.claimed_by_id = %s {probe})
            ORDER BY t.due_at, t.priority DESC, t.created_at
            LIMIT 1 {lock})))"""  # noqa: S608 (table names from model meta)
    if not with_details:
        return update + " RETURNING id"
    output = quote(Output._meta.db_table)
    queue = quote(Queue._meta.db_table)
    rubric = quote(Rubric._meta.db_table)
    returning = ", ".join(CLAIMED_TASK_COLUMNS)
    selected = ", ".join(
        [f"c.{column}" for column in CLAIMED_TASK_COLUMNS]
        + ["q.name", "r.name"]
        + [f"o.{column}" for column in CLAIMED_OUTPUT_COLUMNS]
    )
    if audit_cte:  # the claim's audit event, appended by the same statement; its seq as the last column
        audit_cte, selected = f", {audit_cte}", f"{selected}, (SELECT seq FROM audit_event)"  # noqa: S608
    return f"""
        WITH c AS ({update} RETURNING {returning}){audit_cte}
        SELECT {selected} FROM c
        JOIN {queue} q ON q.id = c.queue_id
        JOIN {output} o ON o.id = c.output_id
        LEFT JOIN {rubric} r ON r.id = c.rubric_id"""  # noqa: S608


def _claimed_from_row(row) -> dict:
    task = dict(zip(CLAIMED_TASK_COLUMNS, row[: len(CLAIMED_TASK_COLUMNS)], strict=True))
    queue_name, rubric_name = row[len(CLAIMED_TASK_COLUMNS)], row[len(CLAIMED_TASK_COLUMNS) + 1]
    output = dict(zip(CLAIMED_OUTPUT_COLUMNS, row[len(CLAIMED_TASK_COLUMNS) + 2 :], strict=True))
    for column in ("input", "trace", "metadata"):  # Django's connection hands jsonb back as text
        if isinstance(output[column], str):
            try:
                output[column] = orjson.loads(output[column])
            except orjson.JSONDecodeError:  # a number no double holds, stored before the API refused it
                output[column] = json.loads(output[column])
    output["id"] = task["output_id"]
    return {**task, "queue": queue_name, "rubric_name": rubric_name, "output": output}


# What the claim statement asks PostgreSQL for (PostgreSQL only; sent with it by hitl_pipeline):
# - its prepared generic plan: the plan cache otherwise keeps choosing a custom plan, made
#   anew on every call, and row-level security's filters make that plan cost more to make
#   than the claim costs to run;
# - no wait for the WAL flush at its commit. The claim appends to the tenant's audit chain,
#   whose counter row stays locked until the commit: waiting for the disk under that lock
#   would let a tenant claim only as often as the disk flushes. A claim lost in a crash is
#   lost whole, its audit event with it (one transaction), and never leaves a hole in the
#   chain: the WAL is written in order, so any later commit that waits for its flush (every
#   review does) makes the claims before it durable too. A lost claim is a lease not taken;
#   the task is pending again.
CLAIM_SETTINGS = {"plan_cache_mode": "force_generic_plan", "synchronous_commit": "off"}


def task_claim(*, tenant: Tenant, reviewer: Reviewer, now: datetime | None = None) -> dict | None:
    """Lease the most urgent task the reviewer may work: one statement, never a task two people hold.

    Returns the task with its output, queue and rubric name, or None.
    """
    if not reviewer.queue_ids:
        return None
    now = now or timezone.now()
    expires = now + timedelta(seconds=settings.HITL_LEASE_SECONDS)
    db = connections[DEFAULT_DB_ALIAS]  # (once: each use of the proxy is a thread-local lookup)
    vendor = db.vendor
    postgres = vendor == "postgresql"
    queues = [list(reviewer.queue_ids)] if postgres else list(reviewer.queue_ids)
    gated = [list(reviewer.gated_queue_ids)] if postgres else list(reviewer.gated_queue_ids)
    at = now if postgres else db.ops.adapt_datetimefield_value(now)
    certified = [*gated, tenant.pk, reviewer.user_id, *gated, at, at] if reviewer.gated_queue_ids else []
    params = [
        reviewer.user_id,
        at,
        expires if postgres else db.ops.adapt_datetimefield_value(expires),
        reviewer.user_id,  # a personal task first
        tenant.pk,
        *queues,
        tenant.pk,
        *queues,
        reviewer.level,
        *certified,
        reviewer.user_id,
        reviewer.user_id,
    ]
    gated_count = len(reviewer.gated_queue_ids)
    if not postgres:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_claim_sql(vendor, len(reviewer.queue_ids), gated_count=gated_count), params)
                row = cursor.fetchone()
            if row is None:
                return None
            claimed = task_details(tenant=tenant, task_id=ReviewTask._meta.pk.to_python(row[0]))
            _claim_audit(tenant, reviewer, claimed, expires)
            return claimed
    # PostgreSQL: one autocommitted statement claims, appends the claim's audit event and
    # returns everything the reviewer sees: the chain's lock is held from inside the
    # statement to its own commit, with no round trip to the client in between.
    audit_head_ensure(tenant)
    audit_cte, audit_params = audit_append_cte(
        tenant=tenant,
        actor=request_actor() or Actor.of_person_id(reviewer.user_id, "reviewer"),
        kind="task.claimed",
        object_type="task",
        object_id_sql="c.id",
        data={"reviewer": reviewer.user_id, "lease_expires_at": expires},
        data_sql={"output": ("c.output_id", "text"), "queue": ("c.queue_id", "int")},
        source="c",
    )
    sql = _claim_sql(vendor, len(reviewer.queue_ids), with_details=True, audit_cte=audit_cte, gated_count=gated_count)
    for _attempt in range(CLAIM_ATTEMPTS):
        try:
            # A savepoint only inside a caller's transaction, so that a conflict does not
            # spoil it; on its own (the API) the statement autocommits.
            with transaction.atomic() if db.in_atomic_block else nullcontext():
                audit_chain_row_locking()
                # With the scope and CLAIM_SETTINGS when autocommitted: one round trip (hitl.postgres).
                (rows,) = db.hitl_pipeline([(sql, [*params, *audit_params])], settings=CLAIM_SETTINGS)
                row = rows[0] if rows else None
        except IntegrityError as error:
            if _violated_constraint(error) != ONE_CLAIM_PER_OUTPUT:
                raise
            # The same person's claim from another connection took a task of the same output
            # and committed (the unique index made this statement wait for it): the next
            # attempt's snapshot sees that claim, so its NOT EXISTS skips the output.
            continue
        if row is None:
            return None
        if row[-1] is None:  # cannot happen: the counter row exists (audit_head_ensure)
            raise RuntimeError("the claim appended no audit event")
        return _claimed_from_row(row[:-1])
    raise ConflictError(
        "Your claims from other connections took the same tasks at the same moment; claim again.",
        code="claim_contended",
    )


def _claim_audit(tenant: Tenant, reviewer: Reviewer, claimed: dict, expires: datetime) -> None:
    """SQLite's claim event (PostgreSQL's is appended by the claim statement itself, alike)."""
    audit_record(
        tenant=tenant,
        actor=request_actor() or Actor.of_person_id(reviewer.user_id, "reviewer"),
        kind="task.claimed",
        object_type="task",
        object_id=claimed["id"],
        data={
            "reviewer": reviewer.user_id,
            "output": claimed["output_id"],
            "queue": claimed["queue_id"],
            "lease_expires_at": expires,
        },
    )


def _violated_constraint(error: IntegrityError) -> str | None:
    diagnostics = getattr(error.__cause__, "diag", None)  # psycopg's; SQLite serialises claims and never gets here
    return getattr(diagnostics, "constraint_name", None)


def _task_for_update(tenant: Tenant, task_id) -> ReviewTask:
    task = ReviewTask.objects.for_tenant(tenant).select_for_update(no_key=True).filter(pk=task_id).first()
    if task is None:
        raise NotFoundError("Task not found.")
    return task


def lease_check(task: ReviewTask, user, now: datetime) -> None:
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
    audit_record(
        tenant=tenant,
        actor=user,
        kind="task.released",
        object_type="task",
        object_id=task.pk,
        data={"reviewer": user.pk, "output": task.output_id},
    )
    return task


@transaction.atomic
def tasks_release_expired(*, now: datetime | None = None) -> int:
    """Return every task whose lease ran out to its queue (periodic; all tenants by design).

    One ``task.expired`` event per tenant and sweep, committing to the tasks it released
    (each leaf: the task, its output and the reviewer whose lease ran out).
    """
    now = now or timezone.now()
    expired = list(
        ReviewTask.unscoped.select_for_update(skip_locked=True, no_key=True)
        .filter(status=TaskStatus.CLAIMED, lease_expires_at__lt=now)
        .order_by("tenant_id", "id")
        .values_list("tenant_id", "id", "output_id", "claimed_by_id", "lease_expires_at")
    )
    if not expired:
        return 0
    released = ReviewTask.unscoped.filter(
        id__in=[row[1] for row in expired], status=TaskStatus.CLAIMED, lease_expires_at__lt=now
    ).update(status=TaskStatus.PENDING, claimed_by=None, claimed_at=None, lease_expires_at=None)
    by_tenant: dict[int, list[tuple]] = {}
    for tenant_id, task_id, output_id, reviewer_id, expired_at in expired:
        leaf = digest(
            {
                "id": str(task_id),
                "output": str(output_id),
                "reviewer": reviewer_id,
                "expired_at": format_time(expired_at),
            }
        )
        by_tenant.setdefault(tenant_id, []).append((task_id, leaf))
    for tenant in Tenant.objects.filter(pk__in=list(by_tenant)).order_by("pk"):  # locks taken in one order
        audit_record_batch(
            tenant=tenant, actor=SYSTEM, kind="task.expired", object_type="task", digests=by_tenant[tenant.pk]
        )
    return released


@transaction.atomic
def task_lease_renew(*, tenant: Tenant, user, task_id, now: datetime | None = None) -> ReviewTask:
    """Extend the holder's lease by a full lease from now (a reviewer still reading)."""
    now = now or timezone.now()
    task = _task_for_update(tenant, task_id)
    lease_check(task, user, now)
    before = task.lease_expires_at
    task.lease_expires_at = now + timedelta(seconds=settings.HITL_LEASE_SECONDS)
    task.save(update_fields=["lease_expires_at"])
    audit_record(
        tenant=tenant,
        actor=user,
        kind="task.lease_renewed",
        object_type="task",
        object_id=task.pk,
        data={"before": {"lease_expires_at": before}, "after": {"lease_expires_at": task.lease_expires_at}},
    )
    return task
