"""Ingest throughput through the real HTTP API, against raw baselines measured in the same run.

Starts gunicorn as in production (DEBUG=0) on a scratch PostgreSQL database, then
(a) submits N outputs with the batch endpoint, 100 items a request, from a few
concurrent clients, against (c) the same rows inserted with a bare psycopg COPY
into the same table; and (b) submits single outputs (``POST /api/v1/outputs``)
from many concurrent clients, against (d) the same bodies posted to a minimal
plain Django view that parses the JSON and inserts one row with the ORM
(``bench/ingest/baseline.py``, served by the same gunicorn processes under the
same settings). Prints rows/s for each and the ratios to the baselines.

    .venv/bin/python bench/ingest/run.py [--n 20000] [--single-n 3000] [--single-rounds 5] [--database NAME]
"""

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "hitl_bench"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
# The bench's gunicorn: the product's settings plus the plain baseline view's URL.
BENCH_SETTINGS = "bench.ingest.settings"
PLAIN_PATH = "/bench/plain-output"


def payload(prefix: str, number: int) -> dict:
    return {
        "external_id": f"{prefix}-{number}",
        "application": "support-bot",
        "input": [{"role": "user", "content": f"Where is my order {number}? It was due yesterday."}],
        "output": f"Your order {number} left our warehouse this morning and arrives tomorrow. " * 3,
        "trace": [
            {"type": "retrieval", "query": f"order {number}", "documents": ["orders/123", "faq/shipping"]},
            {"type": "llm", "model": "gpt-4o-mini", "prompt_tokens": 412, "completion_tokens": 57},
        ],
        "metadata": {"category": "shipping", "locale": "en", "customer_tier": "gold"},
        "model": "gpt-4o-mini",
        "confidence": 0.83,
    }


# --signals: the default policy plus signal rules, and the history folded into the statistics.
SIGNALS_SETUP = """
from datetime import timedelta
from django.utils import timezone
from hitl.tenancy import cross_tenant, tenant_scope
from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish
from reviews.services.signals import signal_statistics_refresh
from tenants.models import Tenant
signals = [
    {"name": "long", "signal": "outlier", "measure": "length", "action": "force_review"},
    {"name": "many steps", "signal": "outlier", "measure": "steps", "quantile": 0.999, "action": "raise_tier"},
    {"name": "costly", "signal": "outlier", "measure": "cost", "action": "force_review"},
    {"name": "tools", "signal": "tool_failed", "action": "raise_tier"},
    {"name": "handoff", "signal": "user_asked_for_human", "action": "force_review"},
]
with cross_tenant("management_command"):
    tenant = Tenant.objects.get(slug="bench")
with tenant_scope(tenant):
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "signals": signals}, reason="bench --signals")
    signal_statistics_refresh(tenant=tenant, now=timezone.now() + timedelta(minutes=1))
"""


def server_env(port: int, db_url: str = DB_URL) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REQUIRE_")}
    env.update(
        DATABASE_URL=db_url,
        DEBUG="0",
        SECRET_KEY="bench-" + "k" * 50,
        HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
        HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


def manage(*args: str, port: int, db_url: str = DB_URL) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=server_env(port, db_url), check=True, capture_output=True, text=True
    ).stdout


def reset_database(name: str = DB_NAME) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def post(port: int, path: str, key: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def run_clients(bodies: list[bytes], clients: int, port: int, path: str, key: str, expect: int) -> tuple[float, list]:
    """Send bodies from ``clients`` threads; returns elapsed seconds and per-request latencies."""
    latencies: list[float] = []
    errors: list[str] = []
    cursor = iter(range(len(bodies)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            started = time.perf_counter()
            status, data = post(port, path, key, bodies[index])
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != expect:
                    errors.append(f"{status}: {data[:200]!r}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, first: {errors[0]}")
    return elapsed, latencies


def cpu_by_process(match) -> dict[int, float]:
    """User+system CPU seconds of each process whose command line satisfies ``match``."""
    seconds = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            if not match(cmdline):
                continue
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            seconds[int(pid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
    return seconds


_CLIENT_BACKEND = re.compile(r" \S+\(\d+\) | \[local\] ")


def ours(cmdline: str, database: str) -> bool:
    """PostgreSQL's own processes (WAL writer, checkpointer, ...) and the backends of our
    database; not the backends of other databases (other people's tests on the machine)."""
    if not cmdline.startswith("postgres:"):
        return False
    return f" {database} " in cmdline or not _CLIENT_BACKEND.search(cmdline)


def cpu_snapshot(database: str, port: int) -> dict[str, dict[int, float]]:
    """CPU by process of our gunicorn (by its port: not other people's on the machine),
    of PostgreSQL (see ``ours``) and of this load generator."""
    return {
        "web": cpu_by_process(lambda cmd: "gunicorn" in cmd and "hitl.wsgi" in cmd and f"127.0.0.1:{port} " in cmd),
        "postgres": cpu_by_process(lambda cmd: ours(cmd, database)),
        "client": {os.getpid(): time.process_time()},
    }


def cpu_spent(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds of each group over a phase, process by process: a process started
    meanwhile counts from zero; one that ended meanwhile (a backend Django closed at
    CONN_MAX_AGE) is missed, so the figures can only err low."""
    return {name: sum(seconds - before[name].get(pid, 0.0) for pid, seconds in after[name].items()) for name in before}


def cpu_line(spent: dict[str, float], rows: int) -> str:
    return ", ".join(f"{name} {seconds / rows * 1e6:.0f} us" for name, seconds in spent.items()) + " CPU per row"


def cpu_split(before: dict, after: dict, rows: int) -> str:
    return cpu_line(cpu_spent(before, after), rows)


def settle(db_url: str) -> None:
    """A VACUUM of the audit chain's counter rows and a CHECKPOINT before a measured phase, so
    that each phase starts from the same state:
    no dirty pages or WAL of the previous phase left to write, and full-page images paid
    alike by the API and by COPY (otherwise a checkpoint falls in one phase or the other
    and moves its PostgreSQL CPU by a factor two from run to run)."""
    with psycopg.connect(psycopg_url(db_url), autocommit=True) as conn:
        # The chain's counter rows, updated by every append, as autovacuum keeps them in
        # production (tenants/migrations/0006): machines that run benchmarks often have it off.
        conn.execute("VACUUM tenants_audithead")
        conn.execute("CHECKPOINT")


def psycopg_url(db_url: str) -> str:
    return db_url.replace("postgres://", "postgresql://")


def bare_copy(
    rows: list[dict], tenant_id: int, db_url: str, port: int, tasks: int = 0, queue_id: int | None = None
) -> tuple[float, str]:
    """The same rows through one COPY into the same table: the floor of what PostgreSQL needs.

    ``tasks``: as many review tasks as the API created for its round, COPYed too, so
    that both sides write the same rows (outputs and the tasks of the sampled ones).
    """
    import hashlib

    database = db_url.rsplit("/", 1)[1]
    settle(db_url)
    with psycopg.connect(psycopg_url(db_url)) as conn:
        cpu_before = cpu_snapshot(database, port)
        started = time.perf_counter()
        with conn.cursor() as cur:
            copy_sql = (
                "COPY reviews_output (id, tenant_id, external_id, application, input, output, trace, metadata,"
                " model, confidence, content_hash, audit_digest, status, risk_tier, review_required, delivery,"
                " received_at,"
                " policy_version, decision_reason, sampling_draw)"
                " FROM STDIN"
            )
            output_ids = [uuid.uuid4() for _ in rows]
            with cur.copy(copy_sql) as copy:
                for output_id, row in zip(output_ids, rows, strict=True):
                    content_hash = hashlib.sha256(orjson.dumps(row, option=orjson.OPT_SORT_KEYS)).hexdigest()
                    copy.write_row(
                        (
                            output_id,
                            tenant_id,
                            row["external_id"],
                            row["application"],
                            orjson.dumps(row["input"]).decode(),
                            row["output"],
                            orjson.dumps(row["trace"]).decode(),
                            orjson.dumps(row["metadata"]).decode(),
                            row["model"],
                            row["confidence"],
                            content_hash,
                            content_hash,  # a 64-digit digest stored, as the API stores the audit digest
                            "auto_approved",
                            "medium",
                            False,
                            "deliver",
                            "2026-01-01T00:00:00Z",
                            1,
                            "no rule matched: default tier; tier medium, rate 0.25, drawn 0.5012: no review",
                            0.5012,
                        )
                    )
            if tasks:
                task_columns = (
                    "id, tenant_id, output_id, queue_id, purpose, status, level_required, priority, due_at, created_at"
                )
                with cur.copy(f"COPY reviews_reviewtask ({task_columns}) FROM STDIN") as copy:
                    for output_id in output_ids[:tasks]:
                        copy.write_row(
                            (
                                uuid.uuid4(),
                                tenant_id,
                                output_id,
                                queue_id,
                                "approval",
                                "pending",
                                1,
                                0,
                                "2026-01-01T08:00:00Z",
                                "2026-01-01T00:00:00Z",
                            )
                        )
        conn.commit()
        elapsed = time.perf_counter() - started
        return elapsed, cpu_split(cpu_before, cpu_snapshot(database, port), len(rows))


def count_tasks(external_prefix: str, db_url: str) -> int:
    with psycopg.connect(psycopg_url(db_url)) as conn:
        return conn.execute(
            "SELECT count(*) FROM reviews_reviewtask t JOIN reviews_output o ON o.id = t.output_id"
            " WHERE o.external_id LIKE %s",
            (external_prefix + "%",),
        ).fetchone()[0]


def count_rows(db_url: str) -> int:
    with psycopg.connect(psycopg_url(db_url)) as conn:
        return conn.execute("SELECT count(*) FROM reviews_output").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="outputs per batch/COPY round")
    parser.add_argument("--single-n", type=int, default=3_000, help="outputs per single/plain-view round")
    parser.add_argument("--single-rounds", type=int, default=5, help="interleaved single/plain-view rounds")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved batch/COPY rounds")
    parser.add_argument("--batch-clients", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for single calls")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--history", type=int, default=20_000, help="rows the tenant has before the run")
    parser.add_argument(
        "--database", default=DB_NAME, help="scratch database (dropped and created): pick one nobody else uses"
    )
    parser.add_argument(
        "--signals",
        action="store_true",
        help="publish a policy with outlier, tool-failure and user signals, and fold the history into the "
        "statistics first (issue 14 point 1)",
    )
    args = parser.parse_args()
    if not args.database.isidentifier():
        raise SystemExit(f"--database must be a plain identifier, got {args.database!r}")
    database = args.database
    db_url = f"postgres://postgres@127.0.0.1:5432/{database}"
    load_before = os.getloadavg()

    reset_database(database)
    manage("migrate", "--noinput", "-v0", port=args.port, db_url=db_url)
    manage("create_tenant", "bench", port=args.port, db_url=db_url)
    key = manage("create_api_key", "bench", "--role", "service", port=args.port, db_url=db_url).strip()
    manage("create_tenant", "bench-copy", port=args.port, db_url=db_url)
    manage("create_tenant", "bench-plain", port=args.port, db_url=db_url)
    with psycopg.connect(psycopg_url(db_url)) as conn:
        copy_tenant = conn.execute("SELECT id FROM tenants_tenant WHERE slug = 'bench-copy'").fetchone()[0]
        bench_tenant = conn.execute("SELECT id FROM tenants_tenant WHERE slug = 'bench'").fetchone()[0]
        copy_queue = conn.execute("SELECT id FROM reviews_queue WHERE tenant_id = %s", (copy_tenant,)).fetchone()[0]
    # Steady state: the tenant already has history and the planner has statistics,
    # as in production (on a just-created, unanalysed table PostgreSQL may pick the
    # wrong index for the idempotency lookup until autovacuum analyses it).
    bare_copy([payload("history", n) for n in range(args.history)], bench_tenant, db_url, args.port)
    with psycopg.connect(psycopg_url(db_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE reviews_output")
    if args.signals:
        manage("shell", "-c", SIGNALS_SETUP, port=args.port, db_url=db_url)

    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "hitl.wsgi",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**server_env(args.port, db_url), "DJANGO_SETTINGS_MODULE": BENCH_SETTINGS},
    )
    try:
        for _ in range(100):
            try:
                post(args.port, "/api/v1/outputs", key, b"{}")
                break
            except OSError:
                time.sleep(0.1)

        # Warm every worker up (lazy imports, connections, prepared statements) off the clock.
        warmup = [
            orjson.dumps({"items": [payload(f"warm{i}", n) for n in range(args.batch_size)]})
            for i in range(4 * args.workers)
        ]
        run_clients(warmup, args.workers, args.port, "/api/v1/outputs/batch", key, 200)
        for prefix, path in (("warm-single", "/api/v1/outputs"), ("warm-plain", PLAIN_PATH)):
            bodies = [orjson.dumps(payload(prefix, n)) for n in range(8 * args.workers)]
            run_clients(bodies, args.workers, args.port, path, key, 201)
        warm_rows = 4 * args.workers * args.batch_size + 2 * 8 * args.workers

        # (a) batch endpoint and (c) bare COPY, interleaved for --rounds rounds so that
        # the machine's noise hits both alike; the median round is reported.
        rounds = []
        for round_number in range(args.rounds):
            batch_bodies = [
                orjson.dumps(
                    {
                        "items": [
                            payload(f"b{round_number}", n) for n in range(start, min(start + args.batch_size, args.n))
                        ]
                    }
                )
                for start in range(0, args.n, args.batch_size)
            ]
            settle(db_url)
            cpu_before = cpu_snapshot(database, args.port)
            batch_seconds, batch_latencies = run_clients(
                batch_bodies, args.batch_clients, args.port, "/api/v1/outputs/batch", key, 200
            )
            batch_cpu = cpu_split(cpu_before, cpu_snapshot(database, args.port), args.n)
            round_tasks = count_tasks(f"b{round_number}-", db_url)
            copy_seconds, copy_cpu = bare_copy(
                [payload(f"c{round_number}", n) for n in range(args.n)],
                copy_tenant,
                db_url,
                args.port,
                round_tasks,
                copy_queue,
            )
            rounds.append(
                {
                    "batch_rate": args.n / batch_seconds,
                    "copy_rate": args.n / copy_seconds,
                    "latencies": batch_latencies,
                    "batch_cpu": batch_cpu,
                    "tasks": round_tasks,
                    "copy_cpu": copy_cpu,
                    "bodies": batch_bodies,
                }
            )
        rounds.sort(key=lambda r: r["batch_rate"] / r["copy_rate"])
        median = rounds[len(rounds) // 2]

        # (b) single calls and (d) the plain view, same bodies, same clients, interleaved
        # (alternating which goes first); the median round is reported.
        def single_phase(prefix: str, path: str) -> dict:
            bodies = [orjson.dumps(payload(prefix, n)) for n in range(args.single_n)]
            settle(db_url)
            cpu_before = cpu_snapshot(database, args.port)
            seconds, latencies = run_clients(bodies, args.clients, args.port, path, key, 201)
            return {
                "rate": args.single_n / seconds,
                "latencies": latencies,
                "cpu": cpu_spent(cpu_before, cpu_snapshot(database, args.port)),
            }

        single_rounds = []
        for round_number in range(args.single_rounds):
            phases = [("single", f"s{round_number}", "/api/v1/outputs"), ("plain", f"p{round_number}", PLAIN_PATH)]
            if round_number % 2:
                phases.reverse()
            measured = {name: single_phase(prefix, path) for name, prefix, path in phases}
            single_rounds.append(measured)
        single_rounds.sort(key=lambda r: r["single"]["rate"] / r["plain"]["rate"])
        single_median = single_rounds[len(single_rounds) // 2]

        # a repeat of a round's batches: the idempotent path (nothing inserted)
        repeat_seconds, _ = run_clients(
            median["bodies"], args.batch_clients, args.port, "/api/v1/outputs/batch", key, 200
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = os.getloadavg()

    stored = count_rows(db_url)
    expected = args.rounds * 2 * args.n + args.single_rounds * 2 * args.single_n + args.history + warm_rows
    assert stored == expected, f"expected {expected} rows, found {stored}"

    copy_rate = median["copy_rate"]
    batch_rate = median["batch_rate"]
    repeat_rate = args.n / repeat_seconds
    single = single_median["single"]
    plain = single_median["plain"]

    def ms(values, q):
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    print(
        f"machine load average (1 min): {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(other work on the machine shows here)"
    )
    print(
        f"outputs per batch/COPY round: {args.n}; gunicorn sync workers: {args.workers}; PostgreSQL on the same cores; "
        f"batch vs COPY: median of {args.rounds} interleaved rounds, ratios "
        + ", ".join(f"{r['batch_rate'] / r['copy_rate']:.2f}" for r in rounds)
    )
    print(
        f"bare COPY (psycopg, same tables)    : {copy_rate:10.0f} rows/s  "
        f"({args.n} outputs and the {median['tasks']} review tasks the API created for the sampled ones)"
    )
    print(
        f"API batch ({args.batch_size}/request, {args.batch_clients} clients) : {batch_rate:10.0f} rows/s"
        f"  = {batch_rate / copy_rate:.2f} x COPY   p50 {ms(median['latencies'], 50):.1f} ms, "
        f"p99 {ms(median['latencies'], 99):.1f} ms per request"
    )
    print(f"API batch repeat (all idempotent)    : {repeat_rate:10.0f} rows/s  = {repeat_rate / copy_rate:.2f} x COPY")
    print(
        f"outputs per single/plain round: {args.single_n}; {args.clients} clients; single vs plain view: median of "
        f"{args.single_rounds} interleaved rounds, ratios "
        + ", ".join(f"{r['single']['rate'] / r['plain']['rate']:.2f}" for r in single_rounds)
    )
    print(
        f"plain Django view (ORM insert)     : {plain['rate']:10.0f} rows/s"
        f"                p50 {ms(plain['latencies'], 50):.1f} ms, p99 {ms(plain['latencies'], 99):.1f} ms"
    )
    print(
        f"API single                         : {single['rate']:10.0f} rows/s"
        f"  = {single['rate'] / plain['rate']:.2f} x plain"
        f"   p50 {ms(single['latencies'], 50):.1f} ms, p99 {ms(single['latencies'], 99):.1f} ms"
    )
    print(f"where the CPU went, COPY  : {median['copy_cpu']}")
    print(f"where the CPU went, batch : {median['batch_cpu']}")
    # CPU over all single/plain rounds: steadier than rates when other work shares the cores.
    requests = args.single_rounds * args.single_n
    cpu = {
        path: {name: sum(r[path]["cpu"][name] for r in single_rounds) for name in ("web", "postgres", "client")}
        for path in ("plain", "single")
    }
    print(f"where the CPU went, plain : {cpu_line(cpu['plain'], requests)} (all rounds)")
    print(f"where the CPU went, single: {cpu_line(cpu['single'], requests)} (all rounds)")
    print(
        f"single vs plain view by CPU (all three processes, all rounds): "
        f"{sum(cpu['plain'].values()) / sum(cpu['single'].values()):.2f}"
    )


if __name__ == "__main__":
    main()
