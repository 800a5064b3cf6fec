"""OTLP intake throughput through the real HTTP endpoint, against a bare COPY of the rows it made.

Starts gunicorn as in production (DEBUG=0) on a scratch PostgreSQL database, then sends
agent runs as an instrumented application exports them: OTLP protobuf requests to
``POST /api/otlp/v1/traces``, each holding ``--runs-per-request`` traces of five spans (an
HTTP span, the agent span, a retrieval, a tool call and the model call; one output each),
from a few concurrent clients. Against it, the rows the endpoint stored in that round (the
outputs, and the review tasks of the sampled ones) are written again with one bare psycopg
COPY into the same tables. Rounds are interleaved and the median is reported, as in
bench/ingest.

    .venv/bin/python bench/otlp/run.py [--n 10000] [--runs-per-request 100] [--database NAME] [--port 8850]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.ingest.run import (  # noqa: E402
    PYTHON,
    bare_copy,
    count_tasks,
    cpu_snapshot,
    cpu_split,
    manage,
    psycopg_url,
    reset_database,
    run_clients,
    server_env,
    settle,
)
from tests.reviews.otlp_spans import agent_run, export  # noqa: E402

PATH = "/api/otlp/v1/traces"


def body(round_number: int, start: int, count: int) -> bytes:
    spans = []
    for number in range(start, start + count):
        trace = (round_number << 64 | number).to_bytes(16, "big")
        spans += agent_run(
            trace=trace,
            question=f"Where is my order {number}? It was due yesterday.",
            answer=f"Your order {number} left our warehouse this morning and arrives tomorrow. " * 3,
        )
    return export(spans, service="support-bot").SerializeToString()


def stored_rows(round_number: int, db_url: str) -> list[dict]:
    """The outputs the endpoint stored in a round, as submissions (for the COPY to write again)."""
    prefix = f"otel:{round_number:016x}"
    with psycopg.connect(psycopg_url(db_url)) as conn:
        rows = conn.execute(
            "SELECT external_id, application, input, output, trace, metadata, model, confidence"
            " FROM reviews_output WHERE external_id LIKE %s",
            (prefix + "%",),
        ).fetchall()
    names = ("external_id", "application", "input", "output", "trace", "metadata", "model", "confidence")
    copied = []
    for row in rows:
        item = dict(zip(names, row, strict=True))
        item["external_id"] = "copy-" + item["external_id"]
        copied.append(item)
    return copied


def post_protobuf(port: int, key: str, payload: bytes) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", PATH, payload, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="agent runs (outputs) per round")
    parser.add_argument("--runs-per-request", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--port", type=int, default=8850)
    parser.add_argument("--database", default="hitl_bench_otlp", help="scratch database (dropped and created)")
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
    with psycopg.connect(psycopg_url(db_url)) as conn:
        copy_tenant = conn.execute("SELECT id FROM tenants_tenant WHERE slug = 'bench-copy'").fetchone()[0]
        copy_queue = conn.execute("SELECT id FROM reviews_queue WHERE tenant_id = %s", (copy_tenant,)).fetchone()[0]

    server = subprocess.Popen(
        [
            *(str(Path(PYTHON).parent / "gunicorn"), "hitl.wsgi", "--workers", str(args.workers)),
            *("--bind", f"127.0.0.1:{args.port}", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=server_env(args.port, db_url),
    )
    import bench.ingest.run as ingest

    ingest.post = lambda port, path, key, payload: post_protobuf(port, key, payload)  # run_clients sends protobuf
    try:
        for _ in range(100):
            try:
                post_protobuf(args.port, key, b"")
                break
            except OSError:
                time.sleep(0.1)
        warmup = [body(999, start, args.runs_per_request) for start in range(0, 4 * args.workers * 10, 10)]
        run_clients(warmup, args.workers, args.port, PATH, key, 200)

        rounds = []
        for round_number in range(1, args.rounds + 1):
            bodies = [
                body(round_number, start, min(args.runs_per_request, args.n - start))
                for start in range(0, args.n, args.runs_per_request)
            ]
            spans = args.n * 5
            settle(db_url)
            cpu_before = cpu_snapshot(database, args.port)
            seconds, latencies = run_clients(bodies, args.clients, args.port, PATH, key, 200)
            api_cpu = cpu_split(cpu_before, cpu_snapshot(database, args.port), args.n)
            rows = stored_rows(round_number, db_url)
            assert len(rows) == args.n, f"round {round_number}: {len(rows)} outputs stored, {args.n} expected"
            tasks = count_tasks(f"otel:{round_number:016x}", db_url)
            copy_seconds, copy_cpu = bare_copy(rows, copy_tenant, db_url, args.port, tasks, copy_queue)
            rounds.append(
                {
                    "rate": args.n / seconds,
                    "spans": spans / seconds,
                    "copy_rate": args.n / copy_seconds,
                    "latencies": latencies,
                    "tasks": tasks,
                    "api_cpu": api_cpu,
                    "copy_cpu": copy_cpu,
                }
            )
        repeat_seconds, _ = run_clients(bodies, args.clients, args.port, PATH, key, 200)
    finally:
        server.terminate()
        server.wait(timeout=30)
    load_after = os.getloadavg()

    rounds.sort(key=lambda r: r["rate"] / r["copy_rate"])
    median = rounds[len(rounds) // 2]

    def ms(values, q):
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    print(f"machine load average (1 min): {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(
        f"agent runs per round: {args.n} (5 spans each, {args.runs_per_request} runs a protobuf request, "
        f"{args.clients} clients); gunicorn sync workers: {args.workers}; median of {args.rounds} interleaved "
        "rounds, ratios " + ", ".join(f"{r['rate'] / r['copy_rate']:.2f}" for r in rounds)
    )
    print(
        f"bare COPY of the same rows         : {median['copy_rate']:10.0f} outputs/s"
        f"  ({args.n} outputs and the {median['tasks']} review tasks of the sampled ones)"
    )
    ratio = median["rate"] / median["copy_rate"]
    print(
        f"OTLP intake (protobuf)             : {median['rate']:10.0f} outputs/s = {ratio:.2f}"
        f" x COPY  ({median['spans']:.0f} spans/s)  p50 {ms(median['latencies'], 50):.1f} ms, "
        f"p99 {ms(median['latencies'], 99):.1f} ms per request"
    )
    print(f"OTLP repeat (all idempotent)       : {args.n / repeat_seconds:10.0f} outputs/s")
    print(f"where the CPU went, COPY : {median['copy_cpu']}")
    print(f"where the CPU went, OTLP : {median['api_cpu']}")


if __name__ == "__main__":
    main()
