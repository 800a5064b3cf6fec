"""Claim throughput and latency under 16 concurrent reviewers, against the bare SQL claim.

For each size (1,000,000 then 10,000 pending tasks on PostgreSQL), 16 worker
processes claim and review for a fixed time:

- Django: ``reviewer_for`` + ``task_claim`` (the claim is timed), then
  ``review_submit`` (approve), exactly as the API calls them;
- bare SQL: the same ``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)``
  statement through psycopg, then a bare UPDATE marking the task done.

It prints claims/s, p50/p99 claim latency, the ratio to bare SQL, and checks
that no task was handed to two reviewers.

    .venv/bin/python bench/claim/run.py [--seconds 10] [--workers 16]
"""

import argparse
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
DB_NAME = "hitl_bench_claim"
DB_DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    DJANGO_SETTINGS_MODULE="hitl.settings",
    DEBUG="0",
    SECRET_KEY="bench-" + "k" * 50,
    ALLOWED_HOSTS="127.0.0.1",
    LOG_LEVEL="WARNING",
)
os.environ.pop("CELERY_BROKER_URL", None)

import psycopg  # noqa: E402


def reset_database() -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def setup_django():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed_people(workers: int):
    from reviews.models import Queue
    from reviews.services.workflow import queue_grant
    from tenants.services import membership_create, tenant_create, user_get_or_create

    tenant = tenant_create(slug="bench")
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    user_ids = []
    for number in range(workers):
        person = user_get_or_create(username=f"reviewer{number}")
        membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
        queue_grant(queue=queue, user=person)
        user_ids.append(person.pk)
    return tenant.pk, queue.pk, user_ids


def load_tasks(tenant_id: int, queue_id: int, count: int) -> float:
    """COPY ``count`` outputs and one pending task each; returns seconds taken."""
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
        conn.commit()
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE reviews_output")
        conn.execute("VACUUM ANALYZE reviews_reviewtask")
    return time.perf_counter() - started


def django_worker(tenant_id, user_id, seconds, review, results):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from reviews.services.workflow import review_submit, reviewer_for, task_claim
    from tenants.models import Tenant

    connection.close()
    tenant = Tenant.objects.get(pk=tenant_id)
    user = get_user_model().objects.get(pk=user_id)
    latencies, claimed = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        reviewer = reviewer_for(tenant=tenant, user=user)
        task = task_claim(tenant=tenant, reviewer=reviewer)
        latencies.append(time.perf_counter() - started)
        if task is None:
            break
        claimed.append(str(task["id"]))
        if review:
            review_submit(tenant=tenant, user=user, task_id=task["id"], decision="approve")
    results.put((latencies, claimed))


def bare_worker(tenant_id, user_id, queue_id, claim_sql, seconds, review, results):
    latencies, claimed = [], []
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            now = datetime.now(UTC)
            started = time.perf_counter()
            row = conn.execute(
                claim_sql.replace("%s", "%s"),
                (user_id, now, now + timedelta(minutes=15), tenant_id, [queue_id], 3, user_id, user_id),
            ).fetchone()
            latencies.append(time.perf_counter() - started)
            if row is None:
                break
            claimed.append(str(row[0]))
            if review:
                conn.execute("UPDATE reviews_reviewtask SET status = 'done' WHERE id = %s", (row[0],))
    results.put((latencies, claimed))


def run_phase(target, args_for, workers: int) -> dict:
    results = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=target, args=(*args_for(index), results)) for index in range(workers)]
    started = time.perf_counter()
    for process in processes:
        process.start()
    collected = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    latencies = [value for lat, _ in collected for value in lat]
    claimed = [task for _, tasks in collected for task in tasks]
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "claims": len(claimed),
        "rate": len(claimed) / elapsed,
        "p50": quantiles[49] * 1000,
        "p99": quantiles[98] * 1000,
        "double": len(claimed) - len(set(claimed)),
    }


def check_no_double_assignment() -> int:
    with psycopg.connect(DB_DSN) as conn:
        return conn.execute(
            "SELECT count(*) FROM (SELECT task_id FROM reviews_review GROUP BY task_id HAVING count(*) > 1) d"
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sizes", default="1000000,10000")
    args = parser.parse_args()

    reset_database()
    setup_django()
    from django.db import connections

    from reviews.services.workflow import _claim_sql

    tenant_id, queue_id, user_ids = seed_people(args.workers)
    claim_sql = _claim_sql("postgresql", 1)
    connections.close_all()
    multiprocessing.set_start_method("fork")
    report = {}
    for size in (int(value) for value in args.sizes.split(",")):
        phases = {}
        for review in (False, True):
            load_seconds = load_tasks(tenant_id, queue_id, size)
            phases["django", review] = run_phase(
                django_worker,
                lambda index, review=review: (tenant_id, user_ids[index], args.seconds, review),
                args.workers,
            )
            doubles = check_no_double_assignment()
            if size < 200_000:  # a small backlog may have run dry: give the bare phase the same N
                load_tasks(tenant_id, queue_id, size)
            phases["bare", review] = run_phase(
                bare_worker,
                lambda index, review=review: (tenant_id, user_ids[index], queue_id, claim_sql, args.seconds, review),
                args.workers,
            )
        report[size] = phases
        print(
            f"pending tasks: {size:>9,}  (loaded in {load_seconds:.0f} s); {args.workers} concurrent reviewers, "
            f"{args.seconds:.0f} s a phase, PostgreSQL on the same 2 cores"
        )
        for review, label in ((False, "claims only"), (True, "claim, then review")):
            django_phase, bare_phase = phases["django", review], phases["bare", review]
            print(f"  {label}:")
            for name, phase in (("Django (API service path)", django_phase), ("bare SQL statement", bare_phase)):
                print(
                    f"    {name:26s}: {phase['rate']:7.0f} claims/s  p50 {phase['p50']:6.2f} ms  "
                    f"p99 {phase['p99']:6.2f} ms  ({phase['claims']} claims, {phase['double']} handed out twice)"
                )
            print(f"    Django / bare SQL claim rate: {django_phase['rate'] / bare_phase['rate']:.2f}")
        print(f"  tasks with two reviews after the run: {doubles}")
    sizes = sorted(report)
    if len(sizes) == 2:
        for review, label in ((False, "claims only"), (True, "claim, then review")):
            small, large = report[sizes[0]]["django", review], report[sizes[1]]["django", review]
            print(f"Django p99 at {sizes[1]:,} / p99 at {sizes[0]:,} ({label}): {large['p99'] / small['p99']:.2f}")


if __name__ == "__main__":
    main()
