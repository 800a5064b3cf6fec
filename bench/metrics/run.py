"""The metrics rollups and the pages that read them (issue 13 point 9, second half).

Drops and creates the scratch database ``--database`` on 127.0.0.1:5432, migrates, seeds a
tenant (reviewers, queues, judges, a quality lead with a key), then, in one process:

1. **The rollup job on real rows.** ``--real`` outputs over 7 days are generated in SQL
   (``generate_series``, not the API), a quarter with a done task and a person's review
   (approve / correct / reject / escalate, time spent from 5 s to 20 min), every output with
   a judge's verdict, one in a hundred with a thumbs-down. It times ``metrics_rollup`` (a
   tenant's first run: every hour rebuilt, as the application's role under row-level
   security) against a **bare GROUP BY** of the same rows: one statement per rollup over
   the same columns and filters, run by the same connection, no Python between. Then an
   incremental run after 1,000 new outputs and 500 late reviews of old outputs.
2. **The pages over 10,000,000 outputs.** Rollup rows standing for ``--outputs`` outputs over
   ``--days`` days (the hour rows and the day rows the job would write: 5 applications each
   with its tier, 3 models, 3 prompt versions, 5 categories; 50 reviewers over 5 queues; 3
   judges) are written with ``COPY``; the outputs themselves do not exist (pages never read
   them). It times, in-process through Django's test client (server time, no network), the
   dashboard ``/quality/``, the reviewers' page, a reviewer's page and ``GET
   /api/v1/metrics`` with several groupings, each for the whole period, ``--rounds`` times
   (median and p90), and beside each the **bare SQL** the request ran: the same statements,
   captured once and run again on a cursor (the "raw" floor of that request: what is left
   is Python and templates).

    .venv/bin/python bench/metrics/run.py --database hitl_bench_metrics [--outputs 10000000] [--real 100000]
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

APPLICATIONS = {
    "support-bot": "low",
    "billing-bot": "medium",
    "claims-bot": "high",
    "legal-bot": "critical",
    "faq": "low",
}
MODELS = ("gpt-4o", "claude-sonnet", "llama-70b")
PROMPTS = ("v1", "v2", "v3")
CATEGORIES = ("billing", "refunds", "account", "legal", "other")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_metrics")
    parser.add_argument("--outputs", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--real", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    return parser.parse_args()


def recreate(database: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')


def setup(database: str) -> None:
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        DEBUG="0",
        SECRET_KEY="bench-" + "k" * 50,
        HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",
        HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="hitl.settings",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # No collectstatic here: plain static URLs (the manifest's hashing is a lookup in a dict).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    call_command("migrate", verbosity=0)


def seed_people():
    from hitl.tenancy import cross_tenant, tenant_scope
    from policies.services import judge_create
    from reviews.services.onboarding import tenant_onboard
    from reviews.services.queues import queue_create
    from tenants.services import PLATFORM_OPERATOR, api_key_create, membership_create, user_get_or_create

    with cross_tenant("management_command"):
        tenant = tenant_onboard(slug="bench-metrics")
    with tenant_scope(tenant):
        reviewers = []
        for number in range(50):
            person = user_get_or_create(username=f"reviewer-{number:02}")
            membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=1 + number % 3)
            reviewers.append(person.pk)
        queues = [queue_create(tenant=tenant, name=f"queue-{number}").pk for number in range(5)]
        judges = [
            judge_create(tenant=tenant, data={"name": f"judge-{n}", "kind": "banned", "params": {"phrases": ["x"]}}).pk
            for n in range(3)
        ]
        lead = user_get_or_create(username="quinn")
        membership_create(tenant=tenant, user=lead, role="quality_lead")
        _, raw = api_key_create(tenant=tenant, role="quality_lead", name="bench", actor=PLATFORM_OPERATOR)
    return tenant, reviewers, queues, judges, lead, raw


REAL = [
    """INSERT INTO reviews_output (id, tenant_id, external_id, application, input, output, trace, metadata, model,
        confidence, content_hash, status, risk_tier, review_required, delivery, policy_version, decision,
        decided_by_id, decided_at, decision_reason, received_at)
    SELECT md5('o' || g)::uuid, {tenant}, 'ext-' || g, (ARRAY{apps})[1 + g % 5], '"q"', 'answer', '[]',
        json_build_object('category', (ARRAY{cats})[1 + g % 5], 'prompt_version', (ARRAY{prompts})[1 + g % 3]),
        (ARRAY{models})[1 + g % 3], 0.5, md5('c' || g),
        CASE WHEN g % 4 = 0 THEN (ARRAY['approved','corrected','rejected','approved'])[1 + (g / 4) % 4]
             ELSE 'auto_approved' END,
        (ARRAY{tiers})[1 + g % 5], g % 4 = 0, 'deliver', 1,
        CASE WHEN g % 4 = 0 THEN (ARRAY['approved','corrected','rejected','approved'])[1 + (g / 4) % 4] ELSE '' END,
        CASE WHEN g % 4 = 0 THEN (ARRAY{reviewers})[1 + g % 50] END,
        CASE WHEN g % 4 = 0 THEN {start} + g * {step} + interval '20 minutes' END,
        'tier', {start} + g * {step}
    FROM generate_series(1, {n}) AS g""",
    """INSERT INTO reviews_reviewtask (id, tenant_id, output_id, queue_id, purpose, status, level_required, priority,
        due_at, created_at, escalation_reason, sla_breached_at)
    SELECT md5('t' || g)::uuid, {tenant}, md5('o' || g)::uuid, (ARRAY{queues})[1 + g % 5], 'approval', 'done', 1, 0,
        {start} + g * {step} + interval '1 hour', {start} + g * {step}, '',
        CASE WHEN g % 40 = 0 THEN {start} + g * {step} + interval '1 hour' END
    FROM generate_series(4, {n}, 4) AS g""",
    """INSERT INTO reviews_review (id, tenant_id, task_id, output_id, reviewer_id, purpose, decision, scores,
        corrected_output, comment, time_spent_seconds, shown, created_at)
    SELECT md5('r' || g)::uuid, {tenant}, md5('t' || g)::uuid, md5('o' || g)::uuid, (ARRAY{reviewers})[1 + g % 50],
        'approval', (ARRAY['approve','correct','reject','escalate'])[1 + (g / 4) % 4], '{{}}', '', '',
        5 + (g * 7919) % 1200, '{{}}', {start} + g * {step} + interval '20 minutes'
    FROM generate_series(4, {n}, 4) AS g""",
    """INSERT INTO reviews_judgement (id, tenant_id, output_id, judge_id, judge_version, result, score, unsure,
        rationale, latency_ms, attempts, model, on_fail, raise_to, created_at)
    SELECT md5('j' || g)::uuid, {tenant}, md5('o' || g)::uuid, {judge}, 1,
        CASE WHEN g % 7 = 0 THEN 'fail' ELSE 'pass' END, 0.9, false, '', 1, 1, '', 'force_review', '',
        {start} + g * {step} + interval '2 seconds'
    FROM generate_series(1, {n}) AS g""",
    """INSERT INTO reviews_feedback (tenant_id, output_id, rating, comment, created_at)
    SELECT {tenant}, md5('o' || g)::uuid, 'down', '', {start} + g * {step} + interval '1 minute'
    FROM generate_series(100, {n}, 100) AS g""",
]

BARE = [
    """SELECT date_trunc('hour', o.received_at), o.application, o.risk_tier, o.model,
        coalesce(o.metadata->>'prompt_version', ''), coalesce(o.metadata->>'category', ''), o.policy_version,
        count(*), count(*) FILTER (WHERE o.review_required), count(*) FILTER (WHERE o.status = 'auto_approved'),
        count(*) FILTER (WHERE o.status = 'blocked'), count(*) FILTER (WHERE o.decided_by_id IS NOT NULL),
        count(*) FILTER (WHERE o.decision = 'approved'), count(*) FILTER (WHERE o.decision = 'rejected'),
        count(*) FILTER (WHERE o.decision = 'corrected'),
        count(*) FILTER (WHERE EXISTS (SELECT 1 FROM reviews_feedback f WHERE f.output_id = o.id AND f.rating = 'down'))
    FROM reviews_output o WHERE o.tenant_id = %(tenant)s
    GROUP BY 1, 2, 3, 4, 5, 6, 7""",
    """SELECT date_trunc('hour', o.received_at), o.application, o.risk_tier, o.model,
        coalesce(o.metadata->>'prompt_version', ''), coalesce(o.metadata->>'category', ''),
        count(*), count(*) FILTER (WHERE t.sla_breached_at IS NOT NULL)
    FROM reviews_reviewtask t JOIN reviews_output o ON o.id = t.output_id WHERE t.tenant_id = %(tenant)s
    GROUP BY 1, 2, 3, 4, 5, 6""",
    """SELECT date_trunc('hour', o.received_at), j.judge_id, j.judge_version, count(*),
        count(*) FILTER (WHERE j.result = 'fail'), count(*) FILTER (WHERE o.decided_by_id IS NOT NULL),
        count(*) FILTER (WHERE o.decision IN ('rejected', 'corrected'))
    FROM reviews_judgement j JOIN reviews_output o ON o.id = j.output_id WHERE j.tenant_id = %(tenant)s
    GROUP BY 1, 2, 3""",
    """SELECT date_trunc('hour', r.created_at), r.reviewer_id, t.queue_id, coalesce(o.metadata->>'category', ''),
        r.time_spent_seconds, count(*), count(*) FILTER (WHERE r.decision = 'correct')
    FROM reviews_review r JOIN reviews_reviewtask t ON t.id = r.task_id JOIN reviews_output o ON o.id = r.output_id
    WHERE r.tenant_id = %(tenant)s GROUP BY 1, 2, 3, 4, 5""",
]


def sql_list(values) -> str:
    return "[" + ", ".join(f"'{value}'" if isinstance(value, str) else str(value) for value in values) + "]"


def real_rows(tenant, reviewers, queues, judges, n: int) -> None:
    from django.db import connection

    from hitl.tenancy import as_owner

    start = "timestamptz '2025-06-01'"
    step = f"interval '{7 * 86400 / n} seconds'"
    values = {
        "tenant": tenant.pk,
        "n": n,
        "start": start,
        "step": step,
        "apps": sql_list(list(APPLICATIONS)),
        "tiers": sql_list(list(APPLICATIONS.values())),
        "models": sql_list(MODELS),
        "prompts": sql_list(PROMPTS),
        "cats": sql_list(CATEGORIES),
        "reviewers": sql_list(reviewers),
        "queues": sql_list(queues),
        "judge": judges[0],
    }
    with as_owner(), connection.cursor() as cursor:
        for statement in REAL:
            cursor.execute(statement.format(**values))
        cursor.execute("ANALYZE")


def timed(function, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - began, result


def rollup_job(tenant, reviewers, queues, judges, n: int) -> dict:
    from django.db import connection, transaction

    from hitl.tenancy import as_owner, tenant_scope
    from quality.rollups import metrics_rollup

    real_rows(tenant, reviewers, queues, judges, n)
    with tenant_scope(tenant):
        job, run = timed(metrics_rollup, tenant=tenant)
    bare_times = []
    with as_owner(), transaction.atomic(), connection.cursor() as cursor:
        for statement in BARE:
            began = time.perf_counter()
            cursor.execute(statement, {"tenant": tenant.pk})
            cursor.fetchall()
            bare_times.append(time.perf_counter() - began)
    bare = sum(bare_times)
    # Incremental: 1,000 new outputs now, and 500 late reviews (decisions) of outputs of last week.
    with as_owner(), connection.cursor() as cursor:
        cursor.execute(
            REAL[0]
            .format(
                tenant=tenant.pk,
                n=1000,
                start="now() - interval '10 minutes'",
                step="interval '0.1 seconds'",
                apps=sql_list(list(APPLICATIONS)),
                tiers=sql_list(list(APPLICATIONS.values())),
                models=sql_list(MODELS),
                prompts=sql_list(PROMPTS),
                cats=sql_list(CATEGORIES),
                reviewers=sql_list(reviewers),
            )
            .replace("md5('o' || g)", "md5('new' || g)")
            .replace("'ext-' || g", "'new-' || g")
        )
        cursor.execute(
            """UPDATE reviews_output SET decision = 'corrected', status = 'corrected', decided_by_id = %s,
            decided_at = now() WHERE id IN (SELECT md5('o' || g)::uuid FROM generate_series(2, 1000, 2) AS g)""",
            [reviewers[0]],
        )
    with tenant_scope(tenant):
        incremental, again = timed(metrics_rollup, tenant=tenant)
    return {
        "outputs": n,
        "job_s": job,
        "hours": run.output_hours + run.review_hours,
        "bare_s": bare,
        "ratio": job / bare,
        "incremental_s": incremental,
        "incremental_hours": again.output_hours + again.review_hours,
    }


def seed_rollups(tenant, reviewers, queues, judges, outputs: int, days: int) -> dict:
    """Rollup rows standing for ``outputs`` outputs over ``days`` days, written with COPY."""
    from django.db import connection

    from hitl.tenancy import as_owner
    from quality import histograms
    from quality.models import OutputDaySummary, ReviewDaySummary
    from quality.rollups import REVIEW_SUMS, _summarise_output_day, _summarise_review_day

    rng = random.Random(13)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=days)
    combos = [
        (app, tier, m, p, c) for app, tier in APPLICATIONS.items() for m in MODELS for p in PROMPTS for c in CATEGORIES
    ]
    per_hour = outputs / (days * 24) / len(combos)
    counts = {"output": 0, "review": 0, "judge": 0, "summary": 0}
    fine_days: dict = {}
    # Per reviewer: two queues; reviews are a quarter of the outputs.
    reviews_per_hour = outputs / 4 / (days * 24)
    review_keys = [(r, queues[(i + k) % 5], c) for i, r in enumerate(reviewers) for k in (0, 1) for c in CATEGORIES]
    per_review_key = reviews_per_hour / len(review_keys)
    output_columns = (
        "tenant_id, grain, bucket, application, tier, model, prompt_version, category, held, outputs, sampled, "
        "auto_approved, blocked, decided, approved, rejected, corrected, thumbs_down, caught_by_feedback, "
        "tasks, tasks_late"
    )
    review_columns = (
        "tenant_id, grain, bucket, reviewer_id, queue_id, category, reviews, approves, rejects, corrects, escalates, "
        "late, timed, time_total, time_histogram"
    )
    judge_columns = (
        "tenant_id, grain, bucket, judge_id, judge_version, judged, failed, unsure, decided, errors, passed_decided, "
        "passed_errors, failed_decided, failed_errors"
    )

    def output_row(n: int) -> list[int]:
        sampled = n // 4
        decided = sampled
        rejected, corrected = decided // 20, decided // 10
        return [
            n,
            sampled,
            n - sampled,
            n // 200,
            decided,
            decided - rejected - corrected,
            rejected,
            corrected,
            n // 100,
            n // 400,
            sampled,
            sampled // 25,
        ]

    def review_row(n: int) -> tuple[list[int], dict]:
        times = [int(rng.lognormvariate(4, 0.9)) for _ in range(min(n, 12))]
        hist = histograms.merge([histograms.histogram(times)])
        scale = n / max(len(times), 1)
        hist = {str(k): max(1, round(v * scale)) for k, v in hist.items()}
        late = n // 30
        return [n, n - n // 5, n // 20, n // 10, n // 20, late, n, int(sum(times) * scale)], hist

    with as_owner(), connection.cursor() as cursor:
        for table in (
            "quality_outputrollup",
            "quality_reviewrollup",
            "quality_judgerollup",
            "quality_reviewdaysummary",
        ):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])  # the job bench's own rows
        raw = cursor.cursor
        with raw.copy(f"COPY quality_outputrollup ({output_columns}) FROM STDIN") as copy:
            day = start
            while day < end:
                day_totals = {}
                for hour in range(24):
                    bucket = day + timedelta(hours=hour)
                    for combo in combos:
                        n = max(0, int(rng.gauss(per_hour, per_hour * 0.2)))
                        row = output_row(n)
                        held = combo[1] in ("high", "critical")
                        copy.write_row([tenant.pk, "hour", bucket, *combo, held, *row])
                        counts["output"] += 1
                        total = day_totals.setdefault(combo, [0] * len(row))
                        for i, value in enumerate(row):
                            total[i] += value
                for combo, total in day_totals.items():
                    copy.write_row([tenant.pk, "day", day, *combo, combo[1] in ("high", "critical"), *total])
                    counts["output"] += 1
                day += timedelta(days=1)
        with raw.copy(f"COPY quality_reviewrollup ({review_columns}) FROM STDIN") as copy:
            day = start
            while day < end:
                day_totals = {}
                for hour in range(24):
                    bucket = day + timedelta(hours=hour)
                    for key in review_keys:
                        n = max(0, int(rng.gauss(per_review_key, per_review_key * 0.3)))
                        if not n:
                            continue
                        row, hist = review_row(n)
                        copy.write_row([tenant.pk, "hour", bucket, *key, *row, json.dumps(hist)])
                        counts["review"] += 1
                        total = day_totals.setdefault(key, [[0] * len(row), []])
                        for i, value in enumerate(row):
                            total[0][i] += value
                        total[1].append(hist)
                for key, (row, hists) in day_totals.items():
                    merged = histograms.merge(hists)
                    copy.write_row([tenant.pk, "day", day, *key, *row, json.dumps(histograms.stored(merged))])
                    counts["review"] += 1
                    fine_days.setdefault(day, []).append(
                        dict(zip(("reviewer_id", "queue_id", "category"), key, strict=True))
                        | dict(zip(REVIEW_SUMS, row, strict=True))
                        | {"time_histogram": merged}
                    )
                day += timedelta(days=1)
        # The day summaries the pages read (quality.rollups writes them after each day's sums).
        for day, rows in fine_days.items():
            _summarise_review_day(tenant, day, rows)
            _summarise_output_day(tenant, day)
        counts["summary"] = ReviewDaySummary.objects.for_tenant(tenant).count()
        counts["output_summary"] = OutputDaySummary.objects.for_tenant(tenant).count()
        with raw.copy(f"COPY quality_judgerollup ({judge_columns}) FROM STDIN") as copy:
            per_judge_hour = int(outputs / (days * 24))
            day = start
            while day < end:
                for grain, buckets, n in (
                    ("hour", [day + timedelta(hours=h) for h in range(24)], per_judge_hour),
                    ("day", [day], per_judge_hour * 24),
                ):
                    for bucket in buckets:
                        for judge in judges:
                            decided = n // 4
                            copy.write_row(
                                [
                                    tenant.pk,
                                    grain,
                                    bucket,
                                    judge,
                                    1,
                                    n,
                                    n // 7,
                                    n // 50,
                                    decided,
                                    decided // 7,
                                    decided - decided // 6,
                                    decided // 20,
                                    decided // 6,
                                    decided // 9,
                                ]
                            )
                            counts["judge"] += 1
                day += timedelta(days=1)
        cursor.execute(
            "INSERT INTO quality_rollupstate (tenant_id, watermark, updated_at, hours_rebuilt) "
            "VALUES (%s, now(), now(), 0) "
            "ON CONFLICT (tenant_id) DO UPDATE SET watermark = now()",
            [tenant.pk],
        )
        cursor.execute("ANALYZE")
    return {"start": start, "end": end, "rows": counts}


def measure(client, path: str, rounds: int, headers=None) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = headers or {}
    assert client.get(path, **headers).status_code == 200, path  # warm caches and templates once
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        response = client.get(path, **headers)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as captured:
        client.get(path, **headers)
    statements = [query["sql"] for query in captured.captured_queries]
    bare = []
    from hitl.tenancy import as_owner

    for _ in range(max(3, rounds // 3)):
        with as_owner(), connection.cursor() as cursor:
            began = time.perf_counter()
            for sql in statements:
                cursor.execute(sql)
                if cursor.description:
                    cursor.fetchall()
            bare.append(time.perf_counter() - began)
    median = statistics.median(times)
    return {
        "path": path,
        "median_ms": median * 1000,
        "p90_ms": statistics.quantiles(times, n=10)[-1] * 1000 if len(times) >= 2 else median * 1000,
        "queries": len(statements),
        "bare_sql_ms": statistics.median(bare) * 1000,
        "ratio": median / statistics.median(bare),
    }


def main() -> None:
    args = parse()
    recreate(args.database)
    setup(args.database)
    from django.test import Client

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()} (shared with other work)")
    tenant, reviewers, queues, judges, lead, raw = seed_people()

    job = rollup_job(tenant, reviewers, queues, judges, args.real)
    print(
        f"rollup job, first run over {job['outputs']:,} real outputs ({job['hours']} hour buckets): "
        f"{job['job_s']:.2f} s = {job['outputs'] / job['job_s']:,.0f} outputs/s; bare GROUP BY of the same rows "
        f"{job['bare_s']:.2f} s; ratio {job['ratio']:.2f}x"
    )
    print(
        f"rollup job, incremental after 1,000 new outputs and 500 late decisions: {job['incremental_s']:.2f} s "
        f"({job['incremental_hours']} hour buckets rebuilt)"
    )

    began = time.perf_counter()
    seeded = seed_rollups(tenant, reviewers, queues, judges, args.outputs, args.days)
    print(
        f"seeded rollups for {args.outputs:,} outputs over {args.days} days in {time.perf_counter() - began:.0f} s: "
        f"{seeded['rows']}"
    )
    start, end = seeded["start"].date(), (seeded["end"] - timedelta(days=1)).date()
    browser = Client()
    browser.force_login(lead)
    period = f"start={start}&end={end}"
    api_period = f"from={start}&to={seeded['end'].date()}"
    api = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    results = [
        measure(browser, f"/quality/?{period}", args.rounds),
        measure(browser, f"/quality/reviewers/?{period}", args.rounds),
        measure(browser, f"/quality/reviewers/{reviewers[0]}/?{period}", args.rounds),
        measure(browser, f"/api/v1/metrics?{api_period}", args.rounds, api),
        measure(browser, f"/api/v1/metrics?{api_period}&group_by=tier", args.rounds, api),
        measure(browser, f"/api/v1/metrics?{api_period}&group_by=model,day", args.rounds, api),
        measure(browser, f"/api/v1/metrics?{api_period}&group_by=reviewer", args.rounds, api),
    ]
    print(f"{'request':<70} {'median ms':>10} {'p90 ms':>8} {'queries':>8} {'bare SQL ms':>12} {'ratio':>6}")
    for row in results:
        print(
            f"{row['path'][:70]:<70} {row['median_ms']:>10.1f} {row['p90_ms']:>8.1f} {row['queries']:>8} "
            f"{row['bare_sql_ms']:>12.1f} {row['ratio']:>6.2f}"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
