"""Claim-to-rendered task page, server time, with a large backlog of pending tasks.

One reviewer signed in with Django's test client (the whole server path: middleware,
session, the page choke point, the claim, the task page's selectors and template) does
``POST /review/claim`` then ``GET /review/tasks/{id}/``, ``--claims`` times; the time from
sending the claim to having the rendered page is recorded. The baseline, in the same run
against the same backlog: the bare claim statement through psycopg (the very SQL the
service runs). Outputs carry a three-step trace (retrieval, tool call, generation) and the
tasks a four-criterion rubric, as in the demo.

    .venv/bin/python bench/workbench/run.py [--pending 1000000] [--claims 300]
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = f"hitl_bench_workbench_{os.getpid()}"
DB_DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    DJANGO_SETTINGS_MODULE="hitl.settings",
    DEBUG="0",
    SECRET_KEY="bench-" + "k" * 50,
    HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
    HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
    ALLOWED_HOSTS="testserver",
    SECURE_SSL_REDIRECT="0",
    LOG_LEVEL="WARNING",
)
os.environ.pop("CELERY_BROKER_URL", None)

import orjson  # noqa: E402
import psycopg  # noqa: E402

TRACE = orjson.dumps(
    [
        {"type": "retrieval", "query": "reset", "documents": [{"source": "help/reset", "content": "Open Settings."}]},
        {"type": "tool", "name": "lookup_user", "arguments": {"id": 7}, "result": {"found": True}},
        {
            "type": "llm",
            "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "How?"}],
            "prompt_tokens": 420,
            "completion_tokens": 80,
            "cost": 0.0004,
            "latency_ms": 900,
        },
    ]
).decode()
RUBRIC = {
    "name": "quality",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5, "anchors": {"1": "no"}},
        {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["ok", "rude"]},
        {"key": "notes", "label": "Notes", "kind": "text", "required": False},
    ],
}


def database(action: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if action == "create":
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed(pending: int):
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG=0: hashed static names, as served
    from policies.services import rubric_publish
    from reviews.models import Queue
    from reviews.services.onboarding import tenant_onboard
    from reviews.services.queues import queue_grant
    from tenants.services import PLATFORM_OPERATOR, membership_create, user_get_or_create

    tenant = tenant_onboard(slug="bench")
    rubric, _ = rubric_publish(tenant=tenant, document=RUBRIC)
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = user_get_or_create(username="rita")
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    queue_grant(queue=queue, user=person, actor=PLATFORM_OPERATOR)

    started = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(DB_DSN) as conn, conn.cursor() as cur:
        ids = [uuid.uuid4() for _ in range(pending)]
        columns = (
            "id, tenant_id, external_id, application, input, output, trace, metadata, model, content_hash, status, "
            "risk_tier, review_required, delivery, received_at, decision_reason, decision, policy_version"
        )
        with cur.copy(f"COPY reviews_output ({columns}) FROM STDIN") as copy:
            for number, output_id in enumerate(ids):
                copy.write_row(
                    (
                        output_id,
                        tenant.pk,
                        f"o-{number}",
                        "support-bot",
                        '[{"role": "user", "content": "How?"}]',
                        "Open Settings > Security.",
                        TRACE,
                        '{"locale": "en"}',
                        "gpt-4o-mini",
                        "",
                        "pending_review",
                        "medium",
                        True,
                        "deliver",
                        now,
                        "tier medium, rate 0.25, drawn 0.1: review",
                        "",
                        2,
                    )
                )
        columns = (
            "id, tenant_id, output_id, queue_id, purpose, status, level_required, priority, due_at, created_at, "
            "rubric_id, rubric_version"
        )
        with cur.copy(f"COPY reviews_reviewtask ({columns}) FROM STDIN") as copy:
            for number, output_id in enumerate(ids):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        tenant.pk,
                        output_id,
                        queue.pk,
                        "approval",
                        "pending",
                        1,
                        number % 3,
                        now + timedelta(minutes=number % 1440),
                        now,
                        rubric.pk,
                        rubric.version,
                    )
                )
        conn.commit()
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE reviews_output")
        conn.execute("VACUUM ANALYZE reviews_reviewtask")
    print(f"loaded {pending:,} pending tasks in {time.perf_counter() - started:.0f} s")
    return tenant, person, queue


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=300)
    args = parser.parse_args()
    database("create")
    try:
        tenant, person, queue = seed(args.pending)
        from django.db import connection
        from django.test import Client

        from reviews.services.claims import _claim_sql

        client = Client()
        client.force_login(person)
        pages, sizes = [], []
        for number in range(args.claims + 10):
            started = time.perf_counter()
            claimed = client.post("/review/claim")
            page = client.get(claimed["Location"])
            elapsed = time.perf_counter() - started
            assert claimed.status_code == 302 and page.status_code == 200, (claimed, page)
            if number >= 10:  # the first ones warm caches and prepared statements, as in a running server
                pages.append(elapsed * 1000)
                sizes.append(len(page.content))
        connection.close()

        sql = _claim_sql("postgresql", 1, with_details=True)
        bare = []
        with psycopg.connect(DB_DSN, autocommit=True, prepare_threshold=5) as conn:
            for number in range(args.claims + 10):
                now = datetime.now(UTC)
                started = time.perf_counter()
                row = conn.execute(
                    sql, [person.pk, now, now + timedelta(minutes=15), tenant.pk, [queue.pk], 3, person.pk, person.pk]
                ).fetchone()
                elapsed = time.perf_counter() - started
                assert row is not None
                if number >= 10:
                    bare.append(elapsed * 1000)

        p95_page, p95_bare = percentile(pages, 0.95), percentile(bare, 0.95)
        print(f"pending tasks                      : {args.pending:>12,}")
        print(
            f"claim -> rendered task page (ms)   : p50 {statistics.median(pages):6.1f}  p95 {p95_page:6.1f}  "
            f"p99 {percentile(pages, 0.99):6.1f}  ({len(pages)} claims)"
        )
        print(
            f"bare claim statement (ms)          : p50 {statistics.median(bare):6.1f}  p95 {p95_bare:6.1f}  "
            f"p99 {percentile(bare, 0.99):6.1f}"
        )
        print(f"ratio p95 page / p95 bare claim    : {p95_page / p95_bare:6.1f} x")
        print(f"task page HTML                     : {statistics.median(sizes) / 1024:.1f} KB")
        print(f"goal p95 <= 150 ms                 : {'met' if p95_page <= 150 else 'NOT met'}")
        print(f"load average                       : {os.getloadavg()}")
    finally:
        from django.db import connections

        connections.close_all()
        database("drop")


if __name__ == "__main__":
    main()
