"""Judges: built-in check throughput, and ingest-to-verdict latency through Redis and a real worker.

Part 1 (in this process, scratch PostgreSQL database ``hitl_bench_judges``):
  - each built-in check over N realistic outputs (default 10,000), against a bare
    precompiled ``re.search`` over the same texts (the cheapest possible scan);
  - the service path ``judge_run`` (read the outputs, check, insert the verdicts,
    finish the sampling decisions, route review tasks) in messages of 500 outputs,
    against a bare psycopg COPY of the same verdict rows.
Part 2 (production shape): gunicorn (DEBUG=0) and ``celery worker`` (prefork) with
  Redis as broker, an LLM judge on a local chat-completions server answering after
  ``--judge-ms`` and a PII check; M outputs posted one by one at a fixed rate; latency
  from ``received_at`` to ``judged_at`` (both stamped by the server), against the bare
  round trip to the judge server measured in the same run.

    .venv/bin/python bench/judges/run.py [--n 10000] [--m 400] [--rate 15] [--judge-ms 50]
"""

import argparse
import http.client
import importlib.util
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DB_NAME = "hitl_bench_judges"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
BROKER = "redis://127.0.0.1:6379/14"
os.environ.update(
    DATABASE_URL=DB_URL,
    DJANGO_SETTINGS_MODULE="hitl.settings",
    DEBUG="0",
    SECRET_KEY="bench-" + "k" * 50,
    HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
    HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
    ALLOWED_HOSTS="127.0.0.1",
    LOG_LEVEL="WARNING",
    HITL_JUDGE_ALLOW_PRIVATE="1",
)
os.environ.pop("CELERY_BROKER_URL", None)

import orjson  # noqa: E402
import psycopg  # noqa: E402

_spec = importlib.util.spec_from_file_location("ingest_bench", ROOT / "bench" / "ingest" / "run.py")
ingest_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ingest_bench)

SENTENCES = [
    "Your order left our warehouse this morning and should arrive tomorrow before noon.",
    "I have updated the delivery address on your account as you asked.",
    "The refund was issued to your original payment method and takes 3-5 business days.",
    "Our support team is available from 9:00 to 17:00 on weekdays.",
    "You can change your plan at any time from the billing page.",
]
EXTRAS = [
    " Reach me at dana.smith@example.com if anything is unclear.",
    " The card 4242 4242 4242 4242 on file was charged.",
    " Transfer it to GB82 WEST 1234 5698 7654 32.",
    " Results are guaranteed, this is risk-free.",
    " Call +44 20 7946 0958 for help.",
]
CHECKS = {
    "pii": {},
    "banned": {"phrases": ["guaranteed", "risk-free", "lawsuit"], "patterns": [r"100\s*%\s*(sure|certain)"]},
    "length": {"min_chars": 20, "max_chars": 2000, "max_words": 400},
    "json_schema": {"schema": {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}},
    "disclaimer": {"texts": ["not legal advice", "consult a professional"], "require": "any"},
}


def texts(count: int) -> list[str]:
    rng = random.Random(5)
    result = []
    for number in range(count):
        body = " ".join(rng.choice(SENTENCES) for _ in range(5))
        if number % 4 == 0:
            body += rng.choice(EXTRAS)
        result.append(body)
    return result


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def part_checks(n: int) -> None:
    from policies.judges.base import JudgeInput
    from policies.judges.registry import judge_compile

    outputs = [JudgeInput(output=text) for text in texts(n)]
    bare = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    started = time.perf_counter()
    found = sum(1 for item in outputs if bare.search(item.output))
    bare_rate = n / (time.perf_counter() - started)
    print(f"built-in checks over {n:,} outputs (~{sum(len(i.output) for i in outputs) // n} characters each):")
    print(f"  bare re.search (one email regex)   : {bare_rate:>10,.0f} outputs/s  ({found} matches)")
    for kind, params in CHECKS.items():
        check = judge_compile(kind, params)
        started = time.perf_counter()
        failed = sum(1 for item in outputs if check(item).result == "fail")
        rate = n / (time.perf_counter() - started)
        ratio = rate / bare_rate
        print(f"  {kind:<12} check                 : {rate:>10,.0f} outputs/s  = {ratio:.2f} x bare ({failed} fail)")


def part_service(n: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from hitl.tenancy import cross_tenant, tenant_scope
    from reviews.services.onboarding import tenant_onboard

    with cross_tenant("management_command"):  # as the operator's commands do
        tenant = tenant_onboard(slug=f"bench-{uuid.uuid4().hex[:6]}")
    with tenant_scope(tenant):  # as a Celery task acting for one tenant does
        _service(tenant, n)


def _service(tenant, n: int) -> None:
    from policies.services import judge_create
    from reviews.models import Judgement, Output
    from reviews.schemas import OutputSubmission
    from reviews.services import ingest as ingest_module
    from reviews.services.judging import BUILTIN_CHUNK, judge_run

    judge = judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    sent = []
    ingest_module.judges_enqueue = lambda plans, kinds: sent.extend(plans)  # measured below, not at ingest
    bodies = texts(n)
    for start in range(0, n, 1000):
        ingest_module.output_ingest_batch(
            tenant=tenant,
            submissions=[
                OutputSubmission(
                    external_id=f"svc-{number}",
                    application="support-bot",
                    input="Where is my order?",
                    output=bodies[number],
                )
                for number in range(start, min(n, start + 1000))
            ],
        )
    ids = [str(output_id) for output_id in sent]
    started = time.perf_counter()
    for start in range(0, len(ids), BUILTIN_CHUNK):
        judge_run(judge_id=judge.pk, output_ids=ids[start : start + BUILTIN_CHUNK])
    service_seconds = time.perf_counter() - started
    judged = Judgement.objects.for_tenant(tenant).count()
    waiting = Output.objects.for_tenant(tenant).filter(status="judging").count()

    rows = list(
        Judgement.objects.for_tenant(tenant).values_list(
            "tenant_id",
            "output_id",
            "judge_id",
            "judge_version",
            "result",
            "score",
            "unsure",
            "rationale",
            "latency_ms",
        )
    )
    with psycopg.connect(DSN) as conn:
        conn.execute("CREATE TEMP TABLE bare (LIKE reviews_judgement INCLUDING ALL)")
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY bare (id, tenant_id, output_id, judge_id, judge_version, result, score, unsure, rationale, "
            "latency_ms, attempts, model, on_fail, raise_to, created_at) FROM STDIN"
        ) as copy:
            now = datetime.now(UTC)
            for row in rows:
                copy.write_row((uuid.uuid4(), *row, 1, "", "force_review", "", now))
        conn.commit()
        copy_seconds = time.perf_counter() - started
    print(f"service path judge_run (messages of {BUILTIN_CHUNK}, PII check, verdicts stored, decisions finished):")
    rate = judged / service_seconds
    print(f"  judge_run            : {rate:>10,.0f} outputs/s  ({judged} verdicts, {waiting} still judging)")
    print(
        f"  bare COPY of verdicts: {len(rows) / copy_seconds:>10,.0f} rows/s     "
        f"judge_run = {(judged / service_seconds) / (len(rows) / copy_seconds):.2f} x COPY"
    )


def part_end_to_end(m: int, rate: float, judge_ms: float, workers: int) -> None:
    import redis

    from tests.judge_server import JudgeServer, ok

    redis.Redis.from_url(BROKER).flushdb()
    delay = judge_ms / 1000

    answer = ok(pass_=True, score=0.92)

    def slow_ok(request_json):
        time.sleep(delay)
        return answer(request_json)

    port = 8765
    env = {**ingest_bench.server_env(port), "DATABASE_URL": DB_URL, "CELERY_BROKER_URL": BROKER}
    env["HITL_JUDGE_ALLOW_PRIVATE"] = "1"
    with JudgeServer(default=slow_ok) as judge_server:
        key = _configure(judge_server.url)
        bare = []
        for _ in range(50):
            conn = http.client.HTTPConnection("127.0.0.1", urlparse(judge_server.url).port)
            started = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", b'{"model": "x", "messages": []}')
            conn.getresponse().read()
            bare.append(time.perf_counter() - started)
            conn.close()
        judge_server.requests.clear()
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "hitl", "worker", "--concurrency", str(workers)),
                *("--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"),
            ],
            cwd=ROOT,
            env=env,
        )
        web = subprocess.Popen(
            [
                *(str(Path(sys.executable).parent / "gunicorn"), "hitl.wsgi", "-b", f"127.0.0.1:{port}"),
                *("-w", "3", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            _warm_up(port, key)
            errors: list[str] = []
            started = time.perf_counter()

            def poster(offset: int, step: int) -> None:
                # Paced: output ``number`` goes at ``number / rate`` seconds, whoever sends it.
                for number in range(offset, m, step):
                    time.sleep(max(0.0, started + number / rate - time.perf_counter()))
                    body = orjson.dumps(ingest_bench.payload("e2e", number))
                    status, data = ingest_bench.post(port, "/api/v1/outputs", key, body)
                    if status != 201:
                        errors.append(f"{status} {data[:200]!r}")

            posters = [threading.Thread(target=poster, args=(offset, 4)) for offset in range(4)]
            for thread in posters:
                thread.start()
            for thread in posters:
                thread.join()
            if errors:
                raise SystemExit(f"{len(errors)} posts failed; first: {errors[0]}")
            posting = time.perf_counter() - started
            deadline = time.monotonic() + 300
            with psycopg.connect(DSN, autocommit=True) as conn:
                while time.monotonic() < deadline:
                    left = conn.execute("SELECT count(*) FROM reviews_output WHERE status = 'judging'").fetchone()[0]
                    if not left:
                        break
                    time.sleep(0.2)
                drained = time.perf_counter() - started
                rows = conn.execute(
                    "SELECT extract(epoch FROM judged_at - received_at) FROM reviews_output "
                    "WHERE external_id LIKE 'e2e-%%' AND judged_at IS NOT NULL"
                ).fetchall()
                verdicts = conn.execute(
                    "SELECT count(*) FROM reviews_judgement j JOIN reviews_output o ON o.id = j.output_id "
                    "WHERE o.external_id LIKE 'e2e-%%'"
                ).fetchone()[0]
                where = conn.execute(
                    "SELECT p.kind, percentile_cont(0.5) WITHIN GROUP (ORDER BY j.latency_ms), avg(j.attempts), "
                    "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.created_at - o.received_at)) "
                    "FROM reviews_judgement j JOIN reviews_output o ON o.id = j.output_id "
                    "JOIN policies_judge p ON p.id = j.judge_id WHERE o.external_id LIKE 'e2e-%%' GROUP BY p.kind"
                ).fetchall()
        finally:
            web.terminate()
            worker.terminate()
            web.wait(30)
            worker.wait(60)
    latencies = [float(row[0]) for row in rows]
    for kind, judge_ms_p50, attempts, stored_p50 in where:
        print(
            f"  {kind:<4} judge: p50 {judge_ms_p50:.1f} ms judging, {attempts:.2f} attempts, "
            f"verdict stored p50 {stored_p50 * 1000:.1f} ms after receipt"
        )
    print(
        f"end to end: {m} outputs posted at {rate:g}/s through gunicorn, Redis and a celery worker "
        f"(prefork x{workers}); 2 judges each (LLM answering after {judge_ms:g} ms, PII)"
    )
    print(
        f"  judged: {len(latencies)} of {m} outputs, {verdicts} verdicts, "
        f"all done {drained:.1f} s after the first post (posting took {posting:.1f} s)"
    )
    p50, p95, p99 = (pct(latencies, q) * 1000 for q in (0.5, 0.95, 0.99))
    print(f"  ingest to verdict  : p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms")
    print(
        f"  bare judge round trip: p50 {statistics.median(bare) * 1000:7.1f} ms  p99 {pct(bare, 0.99) * 1000:7.1f} ms"
        f"  -> overhead at p50 {p50 - statistics.median(bare) * 1000:.1f} ms"
    )


def _warm_up(port: int, key: str) -> None:
    """Until the worker has judged a few outputs: start-up and first-use costs stay out of the figures."""
    deadline = time.monotonic() + 120
    number = 0
    with psycopg.connect(DSN, autocommit=True) as conn:
        while time.monotonic() < deadline:
            body = orjson.dumps(ingest_bench.payload("warm", number))
            try:
                ingest_bench.post(port, "/api/v1/outputs", key, body)
                number += 1
            except OSError:
                time.sleep(0.5)  # gunicorn not listening yet
                continue
            judged = conn.execute(
                "SELECT count(*) FROM reviews_output WHERE external_id LIKE 'warm-%%' AND judged_at IS NOT NULL"
            ).fetchone()[0]
            if judged >= 8:
                return
            time.sleep(0.3)
    raise SystemExit("the worker judged nothing within 120 s")


def _configure(judge_url: str) -> str:
    from hitl.tenancy import cross_tenant, tenant_scope
    from reviews.services.onboarding import tenant_onboard

    with cross_tenant("management_command"):  # as the operator's commands do
        tenant = tenant_onboard(slug=f"e2e-{uuid.uuid4().hex[:6]}")
    with tenant_scope(tenant):  # as an admin's request does
        return _configure_tenant(tenant, judge_url)


def _configure_tenant(tenant, judge_url: str) -> str:
    from policies.services import judge_create, policy_publish
    from tenants.services import PLATFORM_OPERATOR, api_key_create

    policy_publish(
        tenant=tenant,
        document={
            "default_tier": "held",
            "tiers": [{"name": "held", "review_rate": 0.05, "mode": "sequential", "sla_minutes": 60}],
        },
    )
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    judge_create(
        tenant=tenant,
        data={
            "name": "llm",
            "kind": "llm",
            "params": {"base_url": judge_url, "model": "judge", "prompt_template": "Judge this answer: {{output}}"},
        },
    )
    _, key = api_key_create(tenant=tenant, role="service", name="bench", actor=PLATFORM_OPERATOR)
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="outputs for the built-in checks")
    parser.add_argument("--m", type=int, default=400, help="outputs end to end")
    parser.add_argument("--rate", type=float, default=15.0, help="outputs posted per second end to end")
    parser.add_argument("--judge-ms", type=float, default=50.0, help="the local LLM judge's answer time")
    parser.add_argument("--workers", type=int, default=4, help="celery worker processes")
    args = parser.parse_args()
    ingest_bench.reset_database(DB_NAME)
    part_checks(args.n)
    part_service(args.n)
    part_end_to_end(args.m, args.rate, args.judge_ms, args.workers)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        from django.db import connections

        connections.close_all()
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
