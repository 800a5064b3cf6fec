"""bench/audit: verify a tenant's audit chain of 1,000,000 events, against reading and hashing the same rows bare.

    .venv/bin/python bench/audit/run.py --database hitl_bench_audit_yourname   # --n 1000000

Drops and creates the scratch database, migrates, makes a tenant and writes N events
into its chain: the first 1,000 through ``tenants.audit.audit_record`` (the server's
path), the rest computed with ``tenants.auditchain`` (the same rules) and loaded by COPY,
with signed checkpoints every 100,000 events. Then, interleaved, ``--rounds`` times:

* ``verify_audit``: ``tenants.audit.audit_verify`` (what ``manage.py verify_audit`` runs):
  streamed through a server-side cursor, every hash recomputed, links, checkpoints, head;
* bare: the same rows read with psycopg through a server-side cursor (the same columns,
  ``data`` as text) and one SHA-256 each over the row's text, no canonical form.

It prints the median of each, their ratio, and the growth of this process's peak RSS
during the verification (constant memory: it does not grow with N).
"""

import argparse
import hashlib
import os
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="hitl_bench_audit", help="scratch database (dropped and created)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="reuse the database if it holds the chain already")
    args = parser.parse_args()
    dsn = f"postgresql://postgres@127.0.0.1:5432/{args.database}"
    os.environ.update(
        DATABASE_URL=dsn.replace("postgresql://", "postgres://"),
        DJANGO_SETTINGS_MODULE="hitl.settings",
        DEBUG="0",
        SECRET_KEY="bench-" + "k" * 50,
        HITL_SECRET_KEYS="YmVuY2gta2V5LWZvci1zZWNyZXRzLWF0LXJlc3QtMzI=",  # a fixed Fernet key: bench only
        HITL_AUDIT_SIGNING_KEY="YmVuY2gtYXVkaXQtc2lnbmluZy1rZXktMzItYnl0ZXM=",  # a fixed Ed25519 seed: bench only
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    import psycopg

    load = os.getloadavg()[0]
    fresh = not args.keep
    if args.keep:
        try:
            with psycopg.connect(dsn) as conn:
                fresh = conn.execute("SELECT count(*) FROM tenants_auditevent").fetchone()[0] < args.n
        except psycopg.Error:
            fresh = True
    if fresh:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {args.database}")

    import django

    django.setup()
    from django.core.management import call_command

    from tenants.audit import audit_verify

    if fresh:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        tenant = _seed(dsn, args.n)
        print(f"seeded {args.n:,} events in {time.perf_counter() - started:.0f} s")
    from hitl.tenancy import tenant_scope
    from tenants.models import AuditHead, Tenant

    tenant = Tenant.objects.get(slug="bench-audit")
    scope = tenant_scope(tenant)  # what verify_audit does (row-level security); held for the process life
    scope.__enter__()
    events = AuditHead.objects.for_tenant(tenant).get().last_seq  # --n, and the seeding's own (its key, its person)
    print(f"events: {events:,}; machine load average (1 min) {load:.1f} before")
    verify_times, bare_times, rss_growth, verify_cpu, bare_cpu = [], [], [], [], []
    for _ in range(args.rounds):
        rss_before = _peak_rss_mb()
        started, cpu = time.perf_counter(), _cpu()
        report = audit_verify(tenant)
        verify_times.append(time.perf_counter() - started)
        verify_cpu.append(_cpu() - cpu)
        rss_growth.append(_peak_rss_mb() - rss_before)
        assert report.ok and report.events == events, report
        started, cpu = time.perf_counter(), _cpu()
        rows = _bare(dsn, tenant.pk)
        bare_times.append(time.perf_counter() - started)
        bare_cpu.append(_cpu() - cpu)
        assert rows == events
    verify, bare = statistics.median(verify_times), statistics.median(bare_times)
    print(f"rounds: {args.rounds} interleaved; load average (1 min) {os.getloadavg()[0]:.1f} after")
    print(
        f"verify_audit (stream, recompute, checkpoints): {verify:6.1f} s  {args.n / verify:10,.0f} events/s"
        f"  (rounds: {', '.join(f'{t:.1f}' for t in verify_times)} s; peak RSS grew {max(rss_growth):.0f} MB)"
    )
    print(
        f"bare (psycopg read + SHA-256 of each row)    : {bare:6.1f} s  {args.n / bare:10,.0f} events/s"
        f"  (rounds: {', '.join(f'{t:.1f}' for t in bare_times)} s)"
    )
    print(
        f"CPU of this process (the verifier; PostgreSQL runs on the other core): verify "
        f"{statistics.median(verify_cpu):.1f} s, bare {statistics.median(bare_cpu):.1f} s"
    )
    print(f"verify / bare: {verify / bare:.2f} x the time; goal: 1,000,000 events under 30 s -> {verify:.1f} s")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seed(dsn: str, n: int):
    """1,000 events through audit_record, the rest computed with the same rules and COPYed."""
    import psycopg
    from django.db import transaction

    from hitl.tenancy import tenant_scope
    from tenants import auditchain
    from tenants.audit import SYSTEM, audit_checkpoint, audit_record
    from tenants.models import AuditHead, Tenant
    from tenants.services import PLATFORM_OPERATOR, api_key_create, membership_create, user_get_or_create

    tenant = Tenant.objects.create(slug="bench-audit", name="Bench audit")
    scope = tenant_scope(tenant)  # row-level security: the seeding acts in this tenant, as a request would
    scope.__enter__()
    # The actors the COPYed events name must exist in the tenant (composite tenant foreign keys).
    person = user_get_or_create(username="bench-reviewer")
    membership_create(tenant=tenant, user=person, role="reviewer")
    service_key, _ = api_key_create(tenant=tenant, role="service", name="bench service", actor=PLATFORM_OPERATOR)
    reviewer_key, _ = api_key_create(
        tenant=tenant, role="reviewer", name="bench reviewer", user=person, actor=PLATFORM_OPERATOR
    )
    first = min(n, 1000)
    with transaction.atomic():
        for number in range(first):
            audit_record(
                tenant=tenant,
                actor=SYSTEM,
                kind="queue.updated",
                object_type="queue",
                object_id=number,
                data={"before": {"priority": number}, "after": {"priority": number + 1}},
            )
    head = AuditHead.objects.for_tenant(tenant).get()
    seq, prev = head.last_seq, head.last_hash
    at = datetime.now(UTC)
    checkpoints = []
    columns = (
        "tenant_id, seq, at, kind, actor_person_id, actor_key_id, actor_role, object_type, object_id, data, "
        "prev_hash, hash"
    )
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY tenants_auditevent ({columns}) FROM STDIN") as copy:
            for number in range(first, n):
                seq += 1
                at += timedelta(microseconds=137)
                if number % 10 == 0:  # a batch event, as ingest appends
                    ids = [f"01a2{number:08x}-0000-7000-8000-{i:012x}" for i in range(10)]
                    kind, object_type = "output.received", "output"
                    data = {"root": hashlib.sha256(str(number).encode()).hexdigest(), "count": 10, "ids": ids}
                    object_id = data["root"]
                    actor_key, role = service_key.pk, "service"
                else:
                    kind, object_type, object_id = (
                        "task.claimed",
                        "task",
                        f"01a2{number:08x}-0000-7000-8000-000000000000",
                    )
                    data = {
                        "reviewer": person.pk,
                        "output": object_id,
                        "queue": 1,
                        "lease_expires_at": auditchain.format_time(at),
                    }
                    actor_key, role = reviewer_key.pk, "reviewer"
                event = {
                    "tenant": tenant.slug,
                    "at": at,
                    "kind": kind,
                    "actor_person": person.pk if role == "reviewer" else None,
                    "actor_key": actor_key,
                    "actor_role": role,
                    "object_type": object_type,
                    "object_id": object_id,
                    "data": data,
                }
                new = auditchain.chain_hash(prev, seq, auditchain.event_body(event))
                copy.write_row(
                    (
                        tenant.pk,
                        seq,
                        at,
                        kind,
                        event["actor_person"],
                        actor_key,
                        role,
                        object_type,
                        object_id,
                        auditchain.canonical_json(data).decode(),
                        prev,
                        new,
                    )
                )
                prev = new
                if seq % 100_000 == 0:
                    checkpoints.append((seq, new))
        cursor.execute(
            "UPDATE tenants_audithead SET last_seq = %s, prev_hash = last_hash, last_hash = %s WHERE tenant_id = %s",
            [seq, prev, tenant.pk],
        )
        cursor.execute("ANALYZE tenants_auditevent")
        conn.commit()
    from tenants.audit import public_key, signing_key
    from tenants.models import AuditCheckpoint

    kid, _ = public_key()
    for checkpoint_seq, head_hash in checkpoints:  # as the beat would have made them on the way
        signed_at = datetime.now(UTC)
        AuditCheckpoint.objects.for_tenant(tenant).create(
            seq=checkpoint_seq,
            head_hash=head_hash,
            signed_at=signed_at,
            signature=auditchain.checkpoint_sign(signing_key(), tenant.slug, checkpoint_seq, head_hash, signed_at),
            key_id=kid,
        )
    audit_checkpoint(tenant)
    scope.__exit__(None, None, None)
    return tenant


def _bare(dsn: str, tenant_id: int) -> int:
    """The same rows and columns through a server-side cursor, one SHA-256 over each row's text."""
    import psycopg

    rows = 0
    with psycopg.connect(dsn) as conn, conn.cursor(name="bare") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT seq, at, kind, actor_person_id, actor_key_id, actor_role, object_type, object_id, data::text, "
            "prev_hash, hash FROM tenants_auditevent WHERE tenant_id = %s ORDER BY seq",
            [tenant_id],
        )
        for row in cursor:
            hashlib.sha256(repr(row).encode()).digest()
            rows += 1
    return rows


if __name__ == "__main__":
    main()
