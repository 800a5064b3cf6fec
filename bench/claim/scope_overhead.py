"""What sending the tenant's scope costs a statement, in one process (bench/README.md, row-level security).

Against a bare prepared one-row statement (the raw baseline, same run): the scope's
``set_config`` pipelined in front of it (what ``hitl.tenancy.apply_scope`` does in
autocommit), with a new cursor or a reused one, and as a separate round trip. Prints wall
time, client CPU and the PostgreSQL backend's CPU a statement (same machine, from /proc).

    .venv/bin/python bench/claim/scope_overhead.py [--dsn postgresql://postgres@127.0.0.1:5432/postgres] [--n 10000]
"""

import argparse
import os
import time

import psycopg

SQL = "SELECT %s::int + 1"
SET = "SELECT set_config('hitl.tenant', %s, true), set_config('hitl.cross_tenant', %s, true)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    conn = psycopg.connect(args.dsn, autocommit=True, prepare_threshold=5)
    cur, scope_cursor = conn.cursor(), conn.cursor()

    def plain():
        cur.execute(SQL, [1])
        cur.fetchone()

    def pipelined_new_cursor():
        with conn.pipeline():
            conn.cursor().execute(SET, ["1", ""])
            cur.execute(SQL, [1])
        cur.fetchone()

    def pipelined():
        with conn.pipeline():
            scope_cursor.execute(SET, ["1", ""])
            cur.execute(SQL, [1])
        cur.fetchone()

    def two_round_trips():
        scope_cursor.execute(SET, ["1", ""])
        cur.execute(SQL, [1])
        cur.fetchone()

    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    ticks = os.sysconf("SC_CLK_TCK")

    def backend_cpu() -> float:
        with open(f"/proc/{backend}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    base = None
    for run in (plain, pipelined_new_cursor, pipelined, two_round_trips):
        for _ in range(200):  # past the prepare threshold
            run()
        wall, cpu, server = time.perf_counter(), time.process_time(), backend_cpu()
        for _ in range(args.n):
            run()
        wall = 1e6 * (time.perf_counter() - wall) / args.n
        cpu = 1e6 * (time.process_time() - cpu) / args.n
        server = 1e6 * (backend_cpu() - server) / args.n
        base = base or (cpu + server)
        print(
            f"{run.__name__:22s} wall {wall:7.1f} us  client CPU {cpu:6.1f} us  postgres CPU {server:6.1f} us"
            f"  = {(cpu + server) / base:.2f} x the bare statement's CPU"
        )


if __name__ == "__main__":
    main()
