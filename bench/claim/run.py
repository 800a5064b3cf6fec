"""Claim throughput and latency for 16 concurrent reviewers, against bare SQL doing the same work.

The reviewers (``--workers``, 16) are served by ``--processes`` server processes (default 4,
as ``gunicorn --workers 4`` in README.md's deployment and bench/ingest), each with one database
connection, as a web server serves its users: a process answers its reviewers' requests in the
order they were sent (first come, first served), and a claim's latency counts its wait in that
queue. Django and bare SQL are served alike. ``--processes 16`` is one process per reviewer (the
model of every run before the seventh session: sixteen Django processes on two cores, which no
deployment runs; bench/README.md has both).

For each size (1,000,000 then 10,000 pending tasks on PostgreSQL), the processes work the
queue in phases of ``--seconds`` each, each phase starting from the same backlog (see
``reset_backlog``):

saturated (closed loop: every reviewer sends their next request the moment the last one is
answered; this measures throughput, and its latencies are mostly queueing for the 2 cores
and the server processes):

1. Django, claims only: ``reviewer_for`` + ``task_claim``, as ``POST /api/v1/tasks/claim``
   calls them (without HTTP); the claim is timed.
2. bare SQL, claims only: the ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)``
   of ``task_claim`` (``_claim_sql``) through psycopg, with the settings ``task_claim`` sends
   with it (no wait for the WAL flush, its generic plan) (``--bare audit``: the very statement
   ``task_claim`` sends, with the details it returns and its audit event's CTE).
3. Django, claim then review: as 1, then ``review_submit`` (approve).
4. bare SQL, claim then review: as 2, then in one transaction the rows our review
   writes, in plain SQL: the review row, the task marked done, the output's decision
   (``--bare audit``: and its audit event, ``BareAudit``).
   (``review_submit`` also writes webhook deliveries, but only for active endpoints;
   the bench tenant has none, so neither path writes any.)

paced (open loop: each reviewer is given a schedule of claims at ``rate / reviewers``
a second, staggered, and latency is measured from the scheduled send time, so that
a reviewer that falls behind counts its wait instead of sending less: no coordinated
omission; the review is sent when the claim is answered), for each rate of ``--rate``
(claims/s offered in all; default 150 and 300):

5. Django, claim then review.
6. bare SQL, claim then review.

The saturated pairs (1-2, 3-4) run ``--rounds`` times, Django and bare SQL alternating, so
that the machine's drift hits both alike (one phase each let a slow minute decide a ratio:
0.39 and 0.48 in two runs of the same code); the round whose ratio is the median is
reported, with every round's ratio.

It prints claims/s, p50/p99 claim latency, the CPU a claim cost (the processes' own and
their PostgreSQL backends'), the ratios to bare SQL, checks that no task was handed out
twice (every claimed id distinct) and that no task got two reviews, then grades the
run against issue 4's goals.

    .venv/bin/python bench/claim/run.py [--seconds 10] [--rounds 3] [--workers 16] [--processes 4]
        [--rate 150,300] [--sizes 1000000,10000]
"""

import argparse
import collections
import heapq
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# The scratch database (dropped and created): pick a name nobody else on the machine uses.
DB_NAME = os.environ.get("HITL_BENCH_CLAIM_DB") or os.environ.get("BENCH_CLAIM_DATABASE", "hitl_bench_claim")
DB_DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    DJANGO_SETTINGS_MODULE="hitl.settings",
    DEBUG="0",
    SECRET_KEY="bench-" + "k" * 50,
    HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
    HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
    ALLOWED_HOSTS="127.0.0.1",
    LOG_LEVEL="WARNING",
)
os.environ.pop("CELERY_BROKER_URL", None)

import psycopg  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Untimed claims (and reviews) each worker makes first, as in a server that has been
# running: they fill the process's caches and the connection's catalog cache, and get
# every statement past psycopg's prepare threshold (5 runs) and PostgreSQL's first five
# custom plans of a prepared statement. With one, the first second of a paced phase
# re-planned every statement in 16 connections at once: a burst of 30-200 ms claims.
WARM_UP_CLAIMS = 12
# What the bare review writes, as review_submit writes it for these outputs (see load_tasks).
BARE_REVIEW_SQL = """
    INSERT INTO reviews_review (id, tenant_id, task_id, output_id, reviewer_id, purpose, decision, scores,
        corrected_output, comment, time_spent_seconds, rubric_id, rubric_version, shown, created_at)
    VALUES (%s, %s, %s, %s, %s, 'approval', 'approve', '{}', '', '', NULL, NULL, NULL, %s, %s)"""
BARE_DONE_SQL = "UPDATE reviews_reviewtask SET status = 'done' WHERE id = %s"
BARE_CLAIM_SETTINGS_SQL = (  # reviews.services.claims.CLAIM_SETTINGS, as hitl.tenancy.statement_settings sends them
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('synchronous_commit', 'off', true)"
)
BARE_DECISION_SQL = """
    UPDATE reviews_output SET decision = 'approved', status = 'approved', final_output = output,
        delivery = 'deliver', decided_by_id = %s, decided_at = %s
    WHERE id = %s AND decision = ''"""


def reset_database() -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def drop_database() -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def setup_django():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed_people(workers: int):
    from hitl.tenancy import cross_tenant

    with cross_tenant("management_command"):  # as the operator's commands do
        return _seed_people(workers)


def _seed_people(workers: int):
    from reviews.models import Queue
    from reviews.services.onboarding import tenant_onboard
    from reviews.services.queues import queue_grant
    from tenants.services import PLATFORM_OPERATOR, membership_create, user_get_or_create

    tenant = tenant_onboard(slug="bench")
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    user_ids = []
    for number in range(workers):
        person = user_get_or_create(username=f"reviewer{number}")
        membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
        queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)
        user_ids.append(person.pk)
    return tenant.pk, queue.pk, user_ids


# Decided outputs, each with its done task and its review, loaded beside the backlog: a tenant
# that has been running has them, and without them the planner, seeing an empty review table,
# plans its reads of reviews (the claim's, the review's) as sequential scans, which grow
# slower with every review of the phase (PostgreSQL's CPU a review +30 % over a 10 s phase).
HISTORY = 20_000
HISTORY_SQL = (
    """
    INSERT INTO reviews_output (id, tenant_id, external_id, application, input, output, trace, metadata, model,
        content_hash, status, risk_tier, review_required, delivery, received_at, decision_reason, decision,
        policy_version, decided_by_id, decided_at, final_output)
    SELECT gen_random_uuid(), %(tenant)s, 'h-' || n, 'history', '"q"', 'a', '[]', '{}', '', '', 'approved',
        'medium', true, 'deliver', %(then)s, '', 'approved', 1, %(reviewer)s, %(then)s, 'a'
    FROM generate_series(1, %(count)s) AS n""",
    """
    INSERT INTO reviews_reviewtask (id, tenant_id, output_id, queue_id, purpose, status, level_required, priority,
        due_at, created_at)
    SELECT gen_random_uuid(), tenant_id, id, %(queue)s, 'approval', 'done', 1, 0, received_at, received_at
    FROM reviews_output WHERE application = 'history'""",
    """
    INSERT INTO reviews_review (id, tenant_id, task_id, output_id, reviewer_id, purpose, decision, scores,
        corrected_output, comment, time_spent_seconds, rubric_id, rubric_version, shown, created_at)
    SELECT gen_random_uuid(), t.tenant_id, t.id, t.output_id, %(reviewer)s, 'approval', 'approve', '{}', '', '',
        NULL, NULL, NULL, '{}', t.created_at
    FROM reviews_reviewtask t JOIN reviews_output o ON o.id = t.output_id WHERE o.application = 'history'""",
)


def load_tasks(tenant_id: int, queue_id: int, count: int, reviewer_id: int) -> float:
    """COPY ``count`` outputs and one pending task each, beside ``HISTORY`` decided ones; returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(DB_DSN) as conn:
        conn.execute("TRUNCATE reviews_review, reviews_reviewtask, reviews_output CASCADE")
        with conn.cursor() as cur:
            output_ids = [uuid.uuid4() for _ in range(count)]
            out_cols = (
                "id, tenant_id, external_id, application, input, output, trace, metadata, model, content_hash, "
                "status, risk_tier, review_required, delivery, received_at, decision_reason, decision, policy_version"
            )
            with cur.copy(f"COPY reviews_output ({out_cols}) FROM STDIN") as copy:
                for number, output_id in enumerate(output_ids):
                    copy.write_row(
                        (
                            output_id,
                            tenant_id,
                            f"o-{number}",
                            "bench",
                            '"q"',
                            "a",
                            "[]",
                            "{}",
                            "",
                            "",
                            "pending_review",
                            "medium",
                            True,
                            "deliver",
                            now,
                            "",
                            "",
                            1,
                        )
                    )
            task_cols = (
                "id, tenant_id, output_id, queue_id, purpose, status, level_required, priority, due_at, created_at"
            )
            with cur.copy(f"COPY reviews_reviewtask ({task_cols}) FROM STDIN") as copy:
                for number, output_id in enumerate(output_ids):
                    due = now + timedelta(minutes=number % 1440)
                    copy.write_row(
                        (uuid.uuid4(), tenant_id, output_id, queue_id, "approval", "pending", 1, number % 3, due, now)
                    )
        history = {"tenant": tenant_id, "queue": queue_id, "reviewer": reviewer_id, "count": HISTORY}
        history["then"] = now - timedelta(days=1)
        for sql in HISTORY_SQL:
            conn.execute(sql, history)
        conn.commit()
    vacuum()
    return time.perf_counter() - started


def vacuum() -> None:
    """Before each phase (and after the load): the tables analyzed, their dead rows cleared, and a
    CHECKPOINT, as bench/ingest's ``settle``. Without it the checkpoint that PostgreSQL times five
    minutes after the one the load's million rows forced fell in the same phase of every run at
    1,000,000 (the Django path's paced one at 150/s, about five minutes in), writing the load's
    pages while it ran: its p99 claim latency 4.7-5.3 ms against 1.9-2.2 at 10,000. A checkpoint
    asked for restarts that timer, and leaves no dirty pages of the last phase to the next."""
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE reviews_output")
        conn.execute("VACUUM ANALYZE reviews_reviewtask")
        conn.execute("VACUUM ANALYZE reviews_review")
        conn.execute("CHECKPOINT")


def reset_backlog() -> None:
    """Put back the backlog as loaded: every task pending, no review, no decision (the
    history's outputs, tasks and reviews stay as they are).

    Cheaper than loading a million rows again; the VACUUM also clears the dead index
    entries the last phase left at the head of the claim index, so that each phase
    starts from the same state.
    """
    with psycopg.connect(DB_DSN) as conn:
        conn.execute(
            "DELETE FROM reviews_review r USING reviews_output o WHERE o.id = r.output_id AND o.application = 'bench'"
        )
        conn.execute(
            "UPDATE reviews_reviewtask t SET status = 'pending', claimed_by_id = NULL, claimed_at = NULL, "
            "lease_expires_at = NULL FROM reviews_output o "
            "WHERE t.status <> 'pending' AND o.id = t.output_id AND o.application = 'bench'"
        )
        conn.execute(
            "UPDATE reviews_output SET decision = '', status = 'pending_review', final_output = NULL, "
            "decided_by_id = NULL, decided_at = NULL WHERE decision <> '' AND application = 'bench'"
        )
        conn.commit()
    vacuum()


def backend_cpu(pid: int) -> float:
    """User+system CPU seconds of one process (here: the worker's PostgreSQL backend, same machine)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def start_together(plan: dict) -> float:
    """Wait until every worker has connected and warmed up; the common start time.

    Sixteen Django processes starting on two busy cores can take seconds to get there:
    a fixed head start let the first scheduled claims of the paced phases wait for it.
    """
    plan["ready"].wait(timeout=600)
    plan["go"].wait(timeout=60)  # the parent has set the start time
    start = plan["start"].value
    wait_until(start)
    return start


def serve(reviewers: list, count: int, plan: dict, start: float, claim, review) -> tuple[list, list]:
    """Answer this process's reviewers' requests in the order they were sent, as a server
    process with one connection does, until the phase ends or its budget of claims is spent.

    ``reviewers`` are ``(number, who)`` of the ``count`` reviewers in all; ``claim(who)``
    returns the claimed task (None: nothing left) and ``review(who, task)`` reviews it.
    Saturated (``plan["rate"]`` None), a reviewer sends the next request the moment the last
    is answered; paced, each reviewer's claims are due at ``rate / count`` a second, staggered
    across all reviewers, and a claim due while its reviewer's review is still waiting is sent
    once that review is answered (a person reviews, then claims again), its latency still
    counted from when it was due. A claim's latency runs from then to its answer, its wait
    behind the process's other requests included. Once the phase ends, the budget is spent or
    nothing is left to claim, no more claims go out, and the reviews waiting are answered.
    Returns the latencies and the ids claimed.
    """
    end, rate, budget = start + plan["seconds"], plan["rate"], plan["budget"]
    latencies, claimed = [], []
    waiting: collections.deque = collections.deque()  # (sent at, number, who, task to review or None: a claim)
    reviewing: set[int] = set()  # reviewers whose review is waiting
    if rate is None:
        waiting.extend((start, number, who, None) for number, who in reviewers)
        scheduled = iter(())
    else:
        interval = count / rate
        scheduled = heapq.merge(
            *(_due(start + interval * number / count, interval, end, number, who) for number, who in reviewers)
        )
    upcoming = next(scheduled, None)
    claiming = True

    def answer(sent_at: float, number: int, who, task) -> None:
        reviewing.discard(number)
        wait_until(sent_at)
        review(who, task)
        if rate is None:
            waiting.append((time.perf_counter(), number, who, None))

    while waiting or (claiming and upcoming is not None):
        if claiming and upcoming is not None and (not waiting or upcoming[0] < waiting[0][0]):
            (sent_at, number, who), task = upcoming, None
            upcoming = next(scheduled, None)
            if number in reviewing:  # their review first
                own = next(item for item in waiting if item[1] == number)
                waiting.remove(own)
                answer(*own)
        else:
            sent_at, number, who, task = waiting.popleft()
            if task is not None:
                answer(sent_at, number, who, task)
                continue
        if not claiming or sent_at >= end or len(claimed) >= budget:
            claiming = False
            continue
        wait_until(sent_at)
        task = claim(who)
        latencies.append(time.perf_counter() - sent_at)
        if task is None:
            claiming = False
            continue
        claimed.append(task)
        if plan["review"]:
            waiting.append((time.perf_counter(), number, who, task))
            reviewing.add(number)
        elif rate is None:
            waiting.append((time.perf_counter(), number, who, None))
    return latencies, claimed


def _due(first: float, interval: float, end: float, number: int, who):
    """``(moment, number, who)`` of each claim a paced reviewer sends before ``end``."""
    moment = first
    while moment < end:
        yield moment, number, who
        moment += interval


def warm_up(reviewers: list, plan: dict, claim, review) -> list:
    """Untimed claims (and reviews), taking turns between the process's reviewers."""
    claimed = []
    for turn in range(max(WARM_UP_CLAIMS, len(reviewers))):  # every reviewer at least once
        who = reviewers[turn % len(reviewers)][1]
        task = claim(who)
        if task is None:
            break
        claimed.append(task)
        if plan["review"]:
            review(who, task)
    return claimed


def django_worker(index, reviewers, count, tenant_id, plan, results):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from hitl.tenancy import tenant_scope
    from reviews.services.claims import reviewer_for, task_claim
    from reviews.services.review import review_submit
    from tenants.models import Tenant

    connection.close()
    scope = tenant_scope(tenant_id)  # as hitl.api.TenantApi does for a request; here for the process's life
    scope.__enter__()
    tenant = Tenant.objects.get(pk=tenant_id)
    people = get_user_model().objects.in_bulk([user_id for _, user_id in reviewers])
    reviewers = [(number, people[user_id]) for number, user_id in reviewers]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]

    def claim(user):
        task = task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=user))
        return None if task is None else task["id"]

    def review(user, task_id):
        review_submit(tenant=tenant, user=user, task_id=task_id, decision="approve")

    warm = warm_up(reviewers, plan, claim, review)
    start = start_together(plan)
    cpu, server_cpu = time.process_time(), backend_cpu(backend)
    latencies, claimed = serve(reviewers, count, plan, start, claim, review)
    results.put(
        (
            latencies,
            [str(task) for task in (*warm, *claimed)],
            len(warm),
            time.process_time() - cpu,
            backend_cpu(backend) - server_cpu,
        )
    )


class BareAudit:
    """The audit rows the product writes with a claim and a review (issue 12), for the bare path.

    The claim: the very statement ``task_claim`` sends (its details and its audit CTE), its
    parameters from ``tenants.audit.audit_append_cte`` (the event's canonical body is work of
    the audit trail, not of Django), with the settings the product sends with it (no wait for the
    WAL flush, its generic plan), in a pipeline. The review: the event ``review_submit`` appends
    (its data of the same shape), with ``tenants.audit``'s append statement, before COMMIT.
    """

    def __init__(self, tenant_id: int):
        from types import SimpleNamespace

        from reviews.services.claims import CLAIMED_TASK_COLUMNS, _claim_sql
        from tenants.audit import _PG_APPEND

        self.tenant = SimpleNamespace(pk=tenant_id, slug="bench")
        cte, _ = self.claim_event(0, datetime.now(UTC))
        self.claim_sql = _claim_sql("postgresql", 1, with_details=True, audit_cte=cte)
        self.id_at, self.output_at = CLAIMED_TASK_COLUMNS.index("id"), CLAIMED_TASK_COLUMNS.index("output_id")
        self.append_sql = _PG_APPEND

    def claim_event(self, user_id: int, expires: datetime) -> tuple[str, list]:
        from tenants.audit import Actor, audit_append_cte

        return audit_append_cte(
            tenant=self.tenant,
            actor=Actor.of_person_id(user_id, "reviewer"),
            kind="task.claimed",
            object_type="task",
            object_id_sql="c.id",
            data={"reviewer": user_id, "lease_expires_at": expires},
            data_sql={"output": ("c.output_id", "text"), "queue": ("c.queue_id", "int")},
            source="c",
        )

    def review_event(self, user_id: int, task_id, output_id, review_id, shown: dict, now: datetime) -> list:
        from tenants import auditchain

        data = auditchain.json_normalize(
            {
                "review": str(review_id),
                "output": str(output_id),
                "reviewer": user_id,
                "purpose": "approval",
                "decision": "approve",
                "scores": {},
                "corrected_output_sha256": "",
                "comment_sha256": "",
                "time_spent_seconds": None,
                "rubric": None,
                "rubric_version": None,
                "shown": shown,
                "decided": {
                    "output": str(output_id),
                    "decision": "approved",
                    "status": "approved",
                    "delivery": "deliver",
                    "final_output_sha256": None,
                    "decided_by": user_id,
                    "decided_at": auditchain.format_time(now),
                },
            }
        )
        body = auditchain.body_bytes("bench", now, "task.reviewed", user_id, None, "reviewer", "task", task_id, data)
        data_json = auditchain.canonical_json_of_normalized(data).decode()
        tenant = self.tenant.pk
        return [body, tenant, tenant, now, "task.reviewed", user_id, None, "reviewer", "task", str(task_id), data_json]


def bare_claim(conn, claim_sql, tenant_id, user_id, queue_id, audit: BareAudit | None = None):
    """The claim, with the settings the product sends with it; with ``audit``, the product's whole
    statement, else the UPDATE alone: ``(id, output_id)``."""
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=15)
    params = (
        user_id,
        now,
        expires,
        # the person's own (gold) task first, then the shared queue (reviews.services.claims.task_claim's order)
        user_id,
        tenant_id,
        [queue_id],
        tenant_id,
        [queue_id],
        3,
        user_id,
        user_id,
    )
    with conn.pipeline():
        # The settings task_claim sends with it (reviews.services.claims.CLAIM_SETTINGS): a claim
        # lost in a crash is harmless, so neither path waits for the WAL flush of its commit.
        conn.execute(BARE_CLAIM_SETTINGS_SQL)
        if audit is None:
            return conn.execute(claim_sql, params).fetchone()
        _, audit_params = audit.claim_event(user_id, expires)
        row = conn.execute(audit.claim_sql, (*params, *audit_params)).fetchone()
    return None if row is None else (row[audit.id_at], row[audit.output_at])


def bare_review(conn, tenant_id, user_id, task_id, output_id, audit: BareAudit | None = None):
    now = datetime.now(UTC)
    shown = {
        "output_id": str(output_id),
        "content_hash": "",
        "fields": ["input", "output", "trace", "metadata", "model", "confidence"],
        "risk_tier": "medium",
        "policy_version": 1,
        "rubric_version": None,
    }
    review_id = uuid.uuid4()
    if audit is None:
        with conn.transaction():
            conn.execute(BARE_REVIEW_SQL, (review_id, tenant_id, task_id, output_id, user_id, Jsonb(shown), now))
            conn.execute(BARE_DONE_SQL, (task_id,))
            conn.execute(BARE_DECISION_SQL, (user_id, now, output_id))
        return
    # With the audit event: appended in one pipeline with the decision and the COMMIT, as the
    # product sends them (the tenant's counter row locked for the server's time only).
    conn.execute("BEGIN")
    conn.execute(BARE_REVIEW_SQL, (review_id, tenant_id, task_id, output_id, user_id, Jsonb(shown), now))
    conn.execute(BARE_DONE_SQL, (task_id,))
    with conn.pipeline():
        conn.execute(BARE_DECISION_SQL, (user_id, now, output_id))
        conn.execute(audit.append_sql, audit.review_event(user_id, task_id, output_id, review_id, shown, now))
        conn.execute("COMMIT")


def bare_worker(index, reviewers, count, tenant_id, queue_id, claim_sql, plan, results):
    audit = BareAudit(tenant_id) if plan["bare_audit"] else None
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        backend = conn.info.backend_pid

        def claim(user_id):
            return bare_claim(conn, claim_sql, tenant_id, user_id, queue_id, audit)

        def review(user_id, row):
            bare_review(conn, tenant_id, user_id, *row, audit)

        warm = warm_up(reviewers, plan, claim, review)
        start = start_together(plan)
        cpu, server_cpu = time.process_time(), backend_cpu(backend)
        latencies, claimed = serve(reviewers, count, plan, start, claim, review)
        results.put(
            (
                latencies,
                [str(row[0]) for row in (*warm, *claimed)],
                len(warm),
                time.process_time() - cpu,
                backend_cpu(backend) - server_cpu,
            )
        )


def run_phase(target, args_for, processes: int, plan: dict) -> dict:
    """Run ``target(index, *args_for(index), plan, results)`` in ``processes`` processes, together."""
    results = multiprocessing.Queue()
    plan = {
        **plan,
        "ready": multiprocessing.Barrier(processes + 1),
        "go": multiprocessing.Barrier(processes + 1),
        "start": multiprocessing.Value("d", 0.0),
    }
    processes = [
        multiprocessing.Process(target=target, args=(index, *args_for(index), plan, results))
        for index in range(processes)
    ]
    for process in processes:
        process.start()
    plan["ready"].wait(timeout=600)  # every worker connected and warmed up
    plan["start"].value = time.perf_counter() + 0.1
    plan["go"].wait(timeout=60)
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = min(time.perf_counter() - plan["start"].value, plan["seconds"])
    latencies = [value for lat, *_ in collected for value in lat]
    claimed = [task for _, tasks, *_ in collected for task in tasks]  # with the warm-up claims, for the check
    timed = len(claimed) - sum(warm for _, _, warm, *_ in collected)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "claims": timed,
        "rate": timed / elapsed,
        "p50": quantiles[49] * 1000,
        "p99": quantiles[98] * 1000,
        "double": len(claimed) - len(set(claimed)),
        "client_cpu": sum(item[3] for item in collected) / max(timed, 1) * 1e6,
        "server_cpu": sum(item[4] for item in collected) / max(timed, 1) * 1e6,
    }


def tasks_with_two_reviews() -> int:
    with psycopg.connect(DB_DSN) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT task_id FROM reviews_review GROUP BY task_id HAVING count(*) > 1) d"
        ).fetchone()[0]


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument(
        "--rounds", type=int, default=3, help="saturated Django/bare pairs, alternating; the median round is reported"
    )
    parser.add_argument("--workers", type=int, default=16, help="concurrent reviewers")
    parser.add_argument(
        "--processes",
        type=int,
        default=4,
        help="server processes (one connection each) the reviewers' requests are served by, for Django and "
        "bare SQL alike (4: README.md's gunicorn --workers 4; the reviewers' count: one process per reviewer)",
    )
    parser.add_argument(
        "--rate", default="150,300", help="claims/s offered in all in the paced phases; a phase pair for each"
    )
    parser.add_argument("--sizes", default="1000000,10000")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    parser.add_argument(
        "--bare",
        choices=("plain", "audit"),
        default="plain",
        help="plain (default, issue 4's baseline): the bare path writes the task, review and decision rows; "
        "audit: also the audit rows the product writes with them (issue 12), as the product sends them",
    )
    args = parser.parse_args()
    if not 1 <= args.processes <= args.workers:
        parser.error("--processes: between 1 and --workers")

    reset_database()
    setup_django()
    from django.db import connections

    from reviews.services.claims import _claim_sql

    tenant_id, queue_id, user_ids = seed_people(args.workers)

    def served_by(index: int) -> list:  # (number, user id) of the reviewers process ``index`` serves
        return [(number, user_ids[number]) for number in range(args.workers) if number % args.processes == index]

    claim_sql = _claim_sql("postgresql", 1) + ", output_id"  # RETURNING id, output_id: the review needs both
    connections.close_all()
    multiprocessing.set_start_method("fork")
    args.rates = [float(value) for value in args.rate.split(",")]
    phases = []  # (name, path, review, offered rate or None)
    for round_number in range(args.rounds):
        phases += [
            (f"django claims {round_number}", "django", False, None),
            (f"bare claims {round_number}", "bare", False, None),
            (f"django review {round_number}", "django", True, None),
            (f"bare review {round_number}", "bare", True, None),
        ]
    for rate in args.rates:
        phases += [(f"django paced {rate:g}", "django", True, rate), (f"bare paced {rate:g}", "bare", True, rate)]
    report, double_reviews = {}, 0
    try:
        for size in (int(value) for value in args.sizes.split(",")):
            load_seconds = load_tasks(tenant_id, queue_id, size, user_ids[0])
            results = {"load average before": os.getloadavg()[0]}
            for number, (name, path, review, rate) in enumerate(phases):
                if number:
                    reset_backlog()
                # Keep the backlog near its size: a phase stops once it has claimed half of it.
                plan = {
                    "seconds": args.seconds,
                    "review": review,
                    "rate": rate,
                    "budget": max(size // 2 // args.processes, 1),
                    "bare_audit": args.bare == "audit",
                }
                if path == "django":
                    results[name] = run_phase(
                        django_worker, lambda index: (served_by(index), args.workers, tenant_id), args.processes, plan
                    )
                else:
                    results[name] = run_phase(
                        bare_worker,
                        lambda index: (served_by(index), args.workers, tenant_id, queue_id, claim_sql),
                        args.processes,
                        plan,
                    )
                if review:
                    double_reviews += tasks_with_two_reviews()
            results["load average after"] = os.getloadavg()[0]
            median_rounds(results, args.rounds)
            report[size] = results
            print_size(size, load_seconds, results, args)
        print_goals(report, double_reviews, args)
    finally:
        if not args.keep:
            drop_database()


def median_rounds(results: dict, rounds: int) -> None:
    """Each saturated pair also as ``django <key>`` / ``bare <key>``: the phases of the round whose
    Django / bare ratio is the median, and ``<key> ratios``: every round's, in the order run."""
    for key in ("claims", "review"):
        pairs = [(results[f"django {key} {n}"], results[f"bare {key} {n}"]) for n in range(rounds)]
        ratios = [django["rate"] / bare["rate"] for django, bare in pairs]
        median = sorted(range(rounds), key=lambda n: ratios[n])[rounds // 2]
        results[f"django {key}"], results[f"bare {key}"] = pairs[median]
        results[f"{key} ratios"] = ratios


def print_size(size: int, load_seconds: float, results: dict, args) -> None:
    print(
        f"pending tasks: {size:>9,}  (loaded in {load_seconds:.0f} s, reset before each phase); "
        f"{args.workers} concurrent reviewers served by {args.processes} processes, {args.seconds:.0f} s a phase, "
        "PostgreSQL on the same 2 cores"
    )
    print(
        f"  machine load average (1 min) {results['load average before']:.1f} before, "
        f"{results['load average after']:.1f} after (other work on the machine shows here)"
    )
    sections = [
        ("saturated, claims only (closed loop: throughput; latency is mostly queueing)", "claims"),
        ("saturated, claim then review (bare: the same rows in plain SQL, one transaction)", "review"),
    ]
    sections += [
        (f"paced, claim then review: {rate:g} claims/s offered (latency from the scheduled send)", f"paced {rate:g}")
        for rate in args.rates
    ]
    for title, key in sections:
        print(f"  {title}:")
        for label, path in (("Django (API service path)", "django"), ("bare SQL", "bare")):
            phase = results[f"{path} {key}"]
            print(
                f"    {label:26s}: {phase['rate']:7.0f} claims/s  p50 {phase['p50']:6.2f} ms  "
                f"p99 {phase['p99']:6.2f} ms  ({phase['claims']} claims, {phase['double']} handed out twice; "
                f"CPU a claim: worker {phase['client_cpu']:5.0f} us, postgres {phase['server_cpu']:5.0f} us)"
            )
        django, bare = results[f"django {key}"], results[f"bare {key}"]
        ratio = django["rate"] / bare["rate"]
        rounds = results.get(f"{key} ratios")
        each = f" (median of {len(rounds)} rounds: {', '.join(f'{r:.2f}' for r in rounds)})" if rounds else ""
        by_cpu = (bare["client_cpu"] + bare["server_cpu"]) / (django["client_cpu"] + django["server_cpu"])
        print(f"    Django / bare SQL claim rate: {ratio:.2f}{each}; by CPU a claim (worker + postgres): {by_cpu:.2f}")


def print_goals(report: dict, double_reviews: int, args) -> None:
    sizes = sorted(report)
    print("issue 4's goals (Django path):")
    for size in sorted(sizes, reverse=True):
        results = report[size]
        for rate in args.rates:
            paced, bare = results[f"django paced {rate:g}"], results[f"bare paced {rate:g}"]
            print(
                f"  p99 claim latency <= 25 ms at {size:,}, paced at {rate:g}/s: {verdict(paced['p99'] <= 25)} "
                f"({paced['p99']:.1f} ms; bare SQL {bare['p99']:.1f} ms)"
            )
        saturated = results["django review"]
        print(
            f"  p99 claim latency <= 25 ms at {size:,}, saturated: {verdict(saturated['p99'] <= 25)} "
            f"({saturated['p99']:.1f} ms; bare SQL {results['bare review']['p99']:.1f} ms)"
        )
        for key, label in (("review", "claim then review"), ("claims", "claims only")):
            ratio = results[f"django {key}"]["rate"] / results[f"bare {key}"]["rate"]
            print(f"  >= 0.5 x bare SQL claim rate at {size:,}, {label}: {verdict(ratio >= 0.5)} ({ratio:.2f})")
    if len(sizes) == 2:
        small, large = report[sizes[0]], report[sizes[1]]
        keys = [(f"paced {rate:g}", f"paced at {rate:g}/s") for rate in args.rates]
        for key, label in (*keys, ("review", "saturated, with reviews"), ("claims", "claims only")):
            ratio = large[f"django {key}"]["p99"] / small[f"django {key}"]["p99"]
            print(f"  p99 at {sizes[1]:,} <= 1.5 x p99 at {sizes[0]:,}, {label}: {verdict(ratio <= 1.5)} ({ratio:.2f})")
    phases = {id(phase): phase for results in report.values() for phase in results.values() if isinstance(phase, dict)}
    doubles = sum(phase["double"] for phase in phases.values())  # (each phase once, under whatever names)
    print(
        f"  zero double assignments: {verdict(doubles == 0 and double_reviews == 0)} "
        f"({doubles} tasks handed out twice, {double_reviews} tasks with two reviews, over every phase)"
    )


if __name__ == "__main__":
    main()
