"""The auditor's output search (``/audit/``) on a large tenant: each filter's first page, and a
page deep in the results, rendered through the whole server path (Django's test client: the
session, the page choke point, the filter form, the keyset query, the template).

The baseline, in the same run against the same rows: the very SQL the page's query runs (its
keyset SELECT with the SLA subquery), sent bare through psycopg. The ratio is what the page
adds; the bare figures say whether the indexes carry the search.

    .venv/bin/python bench/audit_search/run.py [--outputs 1000000] [--rounds 30]
"""

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = f"hitl_bench_audit_search_{os.getpid()}"
DB_DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
    DJANGO_SETTINGS_MODULE="hitl.settings",
    DEBUG="0",
    SECRET_KEY="bench-" + "k" * 50,
    HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
    HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed bench key
    ALLOWED_HOSTS="testserver",
    SECURE_SSL_REDIRECT="0",
    LOG_LEVEL="WARNING",
)
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("DATABASE_REPLICA_URL", None)

import psycopg  # noqa: E402

APPLICATIONS = ["support-bot", "billing-bot", "legal-bot", "sales-bot", "hr-bot"]
# Tier, share of outputs, share reviewed: critical outputs are rare, as in production.
TIERS = [("low", 0.55, 0.02), ("medium", 0.30, 0.25), ("high", 0.14, 0.6), ("critical", 0.01, 1.0)]
REVIEWERS = 10


def pick_tier(pick: float) -> tuple[str, float]:
    for tier, share, reviewed in TIERS:
        if pick < share:
            return tier, reviewed
        pick -= share
    return TIERS[-1][0], TIERS[-1][2]


def database(action: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if action == "create":
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def seed(count: int):
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    from reviews.models import Queue
    from reviews.services.onboarding import tenant_onboard
    from tenants.services import membership_create, user_get_or_create

    tenant = tenant_onboard(slug="bench")
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    auditor = user_get_or_create(username="alex")
    membership_create(tenant=tenant, user=auditor, role="auditor")
    reviewers = []
    for number in range(REVIEWERS):
        person = user_get_or_create(username=f"reviewer{number}")
        membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
        reviewers.append(person.pk)

    started = time.perf_counter()
    rng = random.Random(7)
    end = datetime(2026, 6, 1, tzinfo=UTC)
    span = timedelta(days=365).total_seconds()
    columns_out = (
        "id, tenant_id, external_id, application, input, output, trace, metadata, model, content_hash, status, "
        "risk_tier, review_required, delivery, received_at, decision_reason, decision, decided_by_id, decided_at, "
        "policy_version, sampling_draw, audit_digest"
    )
    columns_task = "id, tenant_id, output_id, queue_id, purpose, status, level_required, priority, due_at, created_at"
    columns_review = (
        "id, tenant_id, task_id, output_id, reviewer_id, purpose, decision, scores, corrected_output, comment, "
        "shown, created_at"
    )
    with psycopg.connect(DB_DSN) as conn, conn.cursor() as cur:
        tasks, reviews = [], []
        with cur.copy(f"COPY reviews_output ({columns_out}) FROM STDIN") as copy:
            for number in range(count):
                output_id = uuid.uuid4()
                received = end - timedelta(seconds=span * number / count)
                tier, reviewed = pick_tier(rng.random())
                draw = rng.random()
                sampled = draw < reviewed
                decision, status, decided_by, decided_at = "", "auto_approved", None, None
                if sampled:
                    reviewer = rng.choice(reviewers)
                    decision = rng.choice(["approved", "approved", "approved", "rejected", "corrected"])
                    status, decided_by = decision, reviewer
                    decided_at = received + timedelta(minutes=rng.randint(5, 600))
                    task_id = uuid.uuid4()
                    tasks.append((task_id, output_id, received))
                    reviews.append((task_id, output_id, reviewer, decision, decided_at))
                copy.write_row(
                    (
                        output_id,
                        tenant.pk,
                        f"o-{number}",
                        rng.choice(APPLICATIONS),
                        '[{"role": "user", "content": "How?"}]',
                        "Open Settings > Security.",
                        "[]",
                        "{}",
                        "gpt-4o-mini",
                        "",
                        status,
                        tier,
                        sampled,
                        "deliver",
                        received,
                        f"tier {tier}, drawn {draw:.4f}: {'review' if sampled else 'no review'}",
                        decision,
                        decided_by,
                        decided_at,
                        1,
                        draw,
                        "",
                    )
                )
        with cur.copy(f"COPY reviews_reviewtask ({columns_task}) FROM STDIN") as copy:
            for task_id, output_id, received in tasks:
                due = received + timedelta(minutes=480)
                copy.write_row((task_id, tenant.pk, output_id, queue.pk, "approval", "done", 1, 0, due, received))
        verdicts = {"approved": "approve", "rejected": "reject", "corrected": "correct"}
        with cur.copy(f"COPY reviews_review ({columns_review}) FROM STDIN") as copy:
            for task_id, output_id, reviewer, decision, decided_at in reviews:
                copy.write_row(
                    (
                        uuid.uuid4(),
                        tenant.pk,
                        task_id,
                        output_id,
                        reviewer,
                        "approval",
                        verdicts[decision],
                        "{}",
                        "",
                        "",
                        "{}",
                        decided_at,
                    )
                )
        conn.commit()
    with psycopg.connect(DB_DSN, autocommit=True) as conn:
        for table in ("reviews_output", "reviews_reviewtask", "reviews_review"):
            conn.execute(f"VACUUM ANALYZE {table}")
    print(f"loaded {count:,} outputs ({len(tasks):,} reviewed) in {time.perf_counter() - started:.0f} s")
    return tenant, auditor, reviewers, end


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    database("create")
    try:
        tenant, auditor, reviewers, end = seed(args.outputs)
        from django.db import connection
        from django.test import Client

        from reviews.audit_selectors import audit_output_search, cursor_encode

        client = Client()
        client.force_login(auditor)
        middle = (end - timedelta(days=180)).date()
        half = args.outputs // 2
        deep = next(iter(audit_output_search(tenant=tenant).values_list("received_at", "id")[half : half + 1]))
        scenarios = {
            "newest, no filter": ({}, {}),
            "page at the middle (keyset)": ({"after": cursor_encode(*deep)}, {}),
            "one application": ({"application": "legal-bot"}, {"application": "legal-bot"}),
            "rare tier (critical, 1%)": ({"tier": "critical"}, {"tier": "critical"}),
            "decision corrected": ({"decision": "corrected"}, {"decision": "corrected"}),
            "one reviewer": ({"reviewer": str(reviewers[3])}, {"reviewer_id": reviewers[3]}),
            "one day": (
                {"received_from": middle.isoformat(), "received_until": middle.isoformat()},
                {
                    "received_from": datetime.combine(middle, datetime.min.time(), tzinfo=UTC),
                    "received_until": datetime.combine(middle, datetime.min.time(), tzinfo=UTC) + timedelta(days=1),
                },
            ),
            "critical + corrected + reviewer": (
                {"tier": "critical", "decision": "corrected", "reviewer": str(reviewers[3])},
                {"tier": "critical", "decision": "corrected", "reviewer_id": reviewers[3]},
            ),
        }
        print(f"outputs                              : {args.outputs:>12,}")
        print(f"{'scenario':36} : {'page p50':>9} {'p95':>7} | {'bare SQL p50':>12} {'p95':>7} | ratio p50")
        with psycopg.connect(DB_DSN, autocommit=True, prepare_threshold=5) as bare_conn:
            for name, (params, selector_args) in scenarios.items():
                queryset = audit_output_search(tenant=tenant, **selector_args)
                if "after" in params:
                    from django.db.models import Q

                    moment, output_id = deep
                    queryset = queryset.filter(received_at__lte=moment).filter(
                        Q(received_at__lt=moment) | Q(id__lt=output_id)
                    )
                sql, sql_params = queryset[:51].query.sql_with_params()
                page_times, bare_times = [], []
                for round_number in range(args.rounds + 3):
                    started = time.perf_counter()
                    response = client.get("/audit/", params)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, response.status_code
                    started = time.perf_counter()
                    bare_conn.execute(sql, sql_params).fetchall()
                    bare = (time.perf_counter() - started) * 1000
                    if round_number >= 3:
                        page_times.append(elapsed)
                        bare_times.append(bare)
                p50, b50 = statistics.median(page_times), statistics.median(bare_times)
                print(
                    f"{name:36} : {p50:8.1f}  {percentile(page_times, 0.95):6.1f} | {b50:11.1f}  "
                    f"{percentile(bare_times, 0.95):6.1f} | {p50 / b50:6.1f} x"
                )
        connection.close()
        print(f"load average                         : {os.getloadavg()}")
    finally:
        from django.db import connections

        connections.close_all()
        database("drop")


if __name__ == "__main__":
    main()
