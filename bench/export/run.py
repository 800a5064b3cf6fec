"""The streaming compliance export against a bare ``COPY (SELECT ...) TO STDOUT`` of the same rows.

Drops and creates the scratch database ``--database`` on 127.0.0.1:5432, migrates, seeds a
tenant (an auditor key, a reviewer, a judge, a webhook endpoint) and generates ``--n``
outputs in SQL with ``generate_series`` (not through the API): every fourth output has an
approval task, every eighth a review and a decision, every tenth a judge's verdict, every
twentieth a webhook delivery with two attempts. Then it starts gunicorn (``hitl.wsgi``, one
sync worker, ``DEBUG=0``) on ``127.0.0.1:--port`` and, in interleaved rounds:

1. **export**: ``GET /api/v1/audit/export?format=jsonl`` (and ``csv``) over the whole period,
   read to the end by a plain HTTP client that counts lines and bytes;
2. **COPY**: one psycopg ``COPY (SELECT ...) TO STDOUT`` of the same rows, same joins and
   fields (the outputs with their decider, and each output's verdicts, tasks, reviews and
   deliveries aggregated as JSON), read to the end by the same process.

It reports rows/s of each, the ratio (goal: export >= 0.5x COPY), and the gunicorn worker's
resident memory before the first export and its peak during the exports (sampled every
50 ms from /proc; goal: growth under 50 MB).

    .venv/bin/python bench/export/run.py --database hitl_bench_export --port 8820 [--n 1000000] [--rounds 2]
"""

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

COPY_SQL = """
COPY (
    SELECT o.id, o.external_id, o.application, o.received_at, o.risk_tier, o.policy_version, o.sampling_draw,
        o.decision_reason, o.received_risk_tier, o.received_decision_reason, o.review_required, o.status,
        o.delivery, o.decision, u.username, o.decided_at, o.content_hash,
        (SELECT json_agg(json_build_object('judge', jd.name, 'version', j.judge_version, 'result', j.result,
                'score', j.score, 'unsure', j.unsure, 'rationale', j.rationale, 'model', j.model,
                'judged_at', j.created_at) ORDER BY j.created_at, j.id)
            FROM reviews_judgement j JOIN policies_judge jd ON jd.id = j.judge_id
            WHERE j.tenant_id = o.tenant_id AND j.output_id = o.id) AS judges,
        (SELECT json_agg(json_build_object('id', t.id, 'purpose', t.purpose, 'queue', q.name,
                'level_required', t.level_required, 'status', t.status, 'created_at', t.created_at,
                'due_at', t.due_at) ORDER BY t.created_at, t.id)
            FROM reviews_reviewtask t JOIN reviews_queue q ON q.id = t.queue_id
            WHERE t.tenant_id = o.tenant_id AND t.output_id = o.id) AS tasks,
        (SELECT json_agg(json_build_object('reviewer', ru.username, 'level', rt.level_required,
                'purpose', r.purpose, 'reviewed_at', r.created_at, 'shown', r.shown, 'scores', r.scores,
                'decision', r.decision, 'correction', r.corrected_output, 'comment', r.comment,
                'time_spent_seconds', r.time_spent_seconds, 'rubric_version', r.rubric_version)
                ORDER BY r.created_at, r.id)
            FROM reviews_review r JOIN auth_user ru ON ru.id = r.reviewer_id
            LEFT JOIN reviews_reviewtask rt ON rt.id = r.task_id
            WHERE r.tenant_id = o.tenant_id AND r.output_id = o.id) AS reviews,
        (SELECT json_agg(json_build_object('id', d.id, 'event', d.event, 'endpoint', e.url, 'status', d.status,
                'attempts', d.attempts, 'created_at', d.created_at, 'last_error', d.last_error,
                'delivered_at', (SELECT max(a.attempted_at) FROM reviews_webhookattempt a
                    WHERE a.delivery_id = d.id AND a.status_code >= 200 AND a.status_code < 300))
                ORDER BY d.created_at, d.id)
            FROM reviews_webhookdelivery d JOIN reviews_webhookendpoint e ON e.id = d.endpoint_id
            WHERE d.tenant_id = o.tenant_id AND d.output_id = o.id) AS deliveries
    FROM reviews_output o LEFT JOIN auth_user u ON u.id = o.decided_by_id
    WHERE o.tenant_id = {tenant} AND o.received_at >= '2020-01-01' AND o.received_at < '2030-01-01'
    ORDER BY o.received_at, o.id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def server_env(db_url: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REQUIRE_")}
    env.update(
        DATABASE_URL=db_url,
        DEBUG="0",
        SECRET_KEY="bench-" + "k" * 50,
        HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
        HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        HITL_WEBHOOK_ALLOW_PRIVATE="1",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="hitl.settings",
    )
    env.pop("CELERY_BROKER_URL", None)
    env.pop("DATABASE_REPLICA_URL", None)
    return env


SEED = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from policies.services import judge_create
from reviews.models import Queue
from reviews.services.onboarding import tenant_onboard
from reviews.services.webhooks import webhook_endpoint_create
from tenants.services import PLATFORM_OPERATOR, api_key_create, membership_create, user_get_or_create
from hitl.tenancy import cross_tenant, tenant_scope
with cross_tenant("management_command"):  # as the operator's commands do (row-level security)
    tenant = tenant_onboard(slug="bench-export")
    person = user_get_or_create(username="reviewer-one")
with tenant_scope(tenant):
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    judge = judge_create(tenant=tenant, data={"name": "banned", "kind": "banned", "params": {"phrases": ["x"]}})
    endpoint = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    _, raw = api_key_create(tenant=tenant, role="auditor", name="bench", actor=PLATFORM_OPERATOR)
    queue = Queue.objects.for_tenant(tenant).get(name="default")
print(tenant.pk, person.pk, judge.pk, endpoint.pk, queue.pk, raw)
"""

GENERATE = [
    """INSERT INTO reviews_output (id, tenant_id, external_id, application, input, output, trace, metadata, model,
        confidence, content_hash, audit_digest, status, risk_tier, review_required, delivery, policy_version, decision,
        decided_by_id, decided_at, decision_reason, sampling_draw, received_at, judge_plan)
    SELECT md5('o' || g)::uuid, {tenant}, 'ext-' || g, 'app-' || (g % 3), '"q"', 'answer ' || g, '[]', '{{}}',
        'm', 0.5, md5('c' || g), encode(sha256(('o' || g)::bytea), 'hex'),
        CASE WHEN g % 8 = 0 THEN 'approved' ELSE 'auto_approved' END,
        CASE WHEN g % 4 = 0 THEN 'high' ELSE 'low' END, g % 4 = 0, 'deliver', 1,
        CASE WHEN g % 8 = 0 THEN 'approved' ELSE '' END, CASE WHEN g % 8 = 0 THEN {person} END,
        CASE WHEN g % 8 = 0 THEN timestamptz '2025-01-01' + g * interval '1 second' + interval '5 minutes' END,
        'tier ' || CASE WHEN g % 4 = 0 THEN 'high' ELSE 'low' END || ': rule matched; draw below the rate',
        (g % 1000) / 1000.0, timestamptz '2025-01-01' + g * interval '1 second', '[]'
    FROM generate_series(1, {n}) AS g""",
    """INSERT INTO reviews_reviewtask (id, tenant_id, output_id, queue_id, purpose, status, level_required, priority,
        due_at, created_at, escalation_reason)
    SELECT md5('t' || g)::uuid, {tenant}, md5('o' || g)::uuid, {queue}, 'approval',
        CASE WHEN g % 8 = 0 THEN 'done' ELSE 'pending' END, 2, 0,
        timestamptz '2025-01-01' + g * interval '1 second' + interval '8 hours',
        timestamptz '2025-01-01' + g * interval '1 second', ''
    FROM generate_series(4, {n}, 4) AS g""",
    """INSERT INTO reviews_review (id, tenant_id, task_id, output_id, reviewer_id, purpose, decision, scores,
        corrected_output, comment, time_spent_seconds, rubric_version, shown, created_at)
    SELECT md5('r' || g)::uuid, {tenant}, md5('t' || g)::uuid, md5('o' || g)::uuid, {person}, 'approval',
        'approve', '{{"correct": true, "helpful": 4}}', '', 'fine', 42, 1,
        json_build_object('content_hash', md5('c' || g), 'risk_tier', 'high', 'policy_version', 1),
        timestamptz '2025-01-01' + g * interval '1 second' + interval '5 minutes'
    FROM generate_series(8, {n}, 8) AS g""",
    """INSERT INTO reviews_judgement (id, tenant_id, output_id, judge_id, judge_version, result, score, unsure,
        rationale, latency_ms, attempts, model, on_fail, raise_to, created_at)
    SELECT md5('j' || g)::uuid, {tenant}, md5('o' || g)::uuid, {judge}, 1,
        CASE WHEN g % 30 = 0 THEN 'fail' ELSE 'pass' END, 0.9, false, 'no banned phrase', 1, 1, '',
        'force_review', '', timestamptz '2025-01-01' + g * interval '1 second' + interval '1 second'
    FROM generate_series(10, {n}, 10) AS g""",
    """INSERT INTO reviews_webhookdelivery (id, tenant_id, endpoint_id, output_id, event, payload, status, attempts,
        next_attempt_at, last_error, created_at)
    SELECT md5('d' || g)::uuid, {tenant}, {endpoint}, md5('o' || g)::uuid, 'output.decided', '{{}}', 'succeeded',
        2, now(), '', timestamptz '2025-01-01' + g * interval '1 second' + interval '6 minutes'
    FROM generate_series(20, {n}, 20) AS g""",
    """INSERT INTO reviews_webhookattempt (tenant_id, delivery_id, attempted_at, status_code, error, duration_ms)
    SELECT {tenant}, md5('d' || g)::uuid, timestamptz '2025-01-01' + g * interval '1 second'
        + k * interval '10 seconds' + interval '6 minutes', CASE WHEN k = 1 THEN 200 ELSE 503 END, '', 30
    FROM generate_series(20, {n}, 20) AS g, generate_series(0, 1) AS k""",
]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


class PeakSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)


def export(port: int, key: str, kind: str) -> tuple[int, int, float]:
    """Lines and bytes of one whole export, and seconds from request to last byte."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    query = f"from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&format={kind}"
    conn.request("GET", f"/api/v1/audit/export?{query}", headers={"Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    assert response.status == 200, response.read()[:500]
    lines = size = 0
    while block := response.read(1 << 16):
        lines += block.count(b"\n")
        size += len(block)
    conn.close()
    return lines, size, time.perf_counter() - started


def bare_copy(dsn: str, tenant: int) -> tuple[int, int, float]:
    import psycopg

    started = time.perf_counter()
    lines = size = 0
    with psycopg.connect(dsn) as conn, conn.cursor() as cur, cur.copy(COPY_SQL.format(tenant=int(tenant))) as copy:
        for block in copy:
            lines += bytes(block).count(b"\n")
            size += len(block)
    return lines, size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_export")
    parser.add_argument("--port", type=int, default=8820)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--formats", default="jsonl,csv")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (for profiling)")
    args = parser.parse_args()
    import psycopg

    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    db_url = f"postgres://postgres@127.0.0.1:5432/{args.database}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {args.database}")
    env = server_env(db_url)
    seeding = subprocess.run([PYTHON, "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if seeding.returncode:
        sys.exit(seeding.stderr)
    seeded = seeding.stdout.split()
    tenant, person, judge, endpoint, queue, key = seeded[-6:]
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for statement in GENERATE:
            conn.execute(
                statement.format(tenant=tenant, person=person, judge=judge, endpoint=endpoint, queue=queue, n=args.n)
            )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"generated {args.n} outputs and their children in SQL in {time.perf_counter() - started:.1f} s")

    server = subprocess.Popen(
        [
            *(str(Path(PYTHON).parent / "gunicorn"), "hitl.wsgi", "--workers", "1", "--timeout", "3600"),
            *("--bind", f"127.0.0.1:{args.port}", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        pid = worker_pid(server.pid)
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=5).request("GET", "/api/v1/schema/")
                break
            except OSError:
                time.sleep(0.2)
        # Warm the worker up off the clock: imports, the connection, a small export.
        conn = http.client.HTTPConnection("127.0.0.1", args.port)
        conn.request(
            "GET",
            "/api/v1/audit/export?from=2025-01-01T00:00:00Z&to=2025-01-01T01:00:00Z&format=csv",
            headers={"Authorization": f"Bearer {key}"},
        )
        conn.getresponse().read()
        before = rss_kib(pid)
        sampler = PeakSampler(pid)
        sampler.start()
        load_before = os.getloadavg()[0]
        results: dict[str, list[tuple]] = {"copy": []}
        for number in range(args.rounds):
            for kind in args.formats.split(","):
                results.setdefault(kind, []).append(export(args.port, key, kind))
            results["copy"].append(bare_copy(dsn, int(tenant)))
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1][2]:.1f} s" for k, v in results.items()))
        sampler.running = False
        sampler.join()
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"machine load average (1 min): {load_before:.1f} before, {load_after:.1f} after")
    print(f"outputs exported per round: {args.n}; gunicorn: 1 sync worker; PostgreSQL on the same cores")
    copy_rate = statistics.median(args.n / seconds for _, _, seconds in results["copy"])
    copy_mb = results["copy"][0][1] / 1e6
    print(f"bare COPY (SELECT ...) TO STDOUT, same rows: {copy_rate:10.0f} rows/s  ({copy_mb:.0f} MB as CSV)")
    for kind in args.formats.split(","):
        rates = [args.n / seconds for _, _, seconds in results[kind]]
        lines = results[kind][0][0]
        ratios = ", ".join(
            f"{args.n / s / (args.n / c):.2f}"
            for (_, _, s), (_, _, c) in zip(results[kind], results["copy"], strict=True)
        )
        print(
            f"API export {kind:5}                       : {statistics.median(rates):10.0f} rows/s  = "
            f"{statistics.median(rates) / copy_rate:.2f} x COPY (rounds {ratios}; {lines} lines, "
            f"{results[kind][0][1] / 1e6:.0f} MB)"
        )
    growth = (sampler.peak - before) / 1024
    print(f"gunicorn worker RSS: {before / 1024:.0f} MB before, peak {sampler.peak / 1024:.0f} MB: +{growth:.1f} MB")
    if args.keep:
        return
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


if __name__ == "__main__":
    main()
