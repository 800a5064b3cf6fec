"""A real ``celery -A hitl worker`` on Redis and the test database, for the tests that need one.

The test process publishes through a producer of its own: the project's Celery app
runs tasks in-process during tests (no broker is configured for them).
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
from celery import Celery
from django.db import connection

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def celery_worker(
    monkeypatch,
    tasks,
    env: dict[str, str],
    pool: tuple[str, ...] = ("--pool", "solo"),
    broker_url: str = REDIS_URL,
    queue: str | None = None,
):
    """Start a worker with ``env`` added; route each task's ``delay`` of ``tasks`` to it.

    The worker consumes a queue of its own (``queue``, or a fresh name): two test
    processes (pytest-xdist, or two checkouts on one machine) may each run a worker on
    the same Redis at once. It runs in a process group of its own, so that a test may
    kill it whole (``kill_worker``); whatever is left of it is killed at the end.
    """
    queue = queue or f"hitl-test-{uuid.uuid4().hex}"
    database = connection.settings_dict
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "hitl", "worker", *pool, "--loglevel", "WARNING", "-Q", queue),
            *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
            "CELERY_BROKER_URL": broker_url,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.queue = queue
    # Not the current app: the project's shared tasks resolve through the current app, so a
    # producer made current sent every later test's tasks of this process to a broker nobody
    # reads (the demo's judges never ran after a worker test).
    producer = Celery("hitl-test-producer", broker=broker_url, set_as_current=False)
    with monkeypatch.context() as routed:
        for task in tasks:
            routed.setattr(
                task, "delay", lambda *args, name=task.name: producer.send_task(name, args=list(args), queue=queue)
            )
        try:
            yield process
        finally:
            producer.close()
            process.terminate()
            try:
                output = process.communicate(timeout=30)[0]
            finally:
                kill_worker(process)  # pool processes a killed parent left behind
            _forget(broker_url, queue)
            print(output.decode(errors="replace"))  # shown by pytest only on failure


def kill_worker(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the worker's whole process group (the main process and its pool)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def pool_processes(process: subprocess.Popen) -> list[int]:
    """The pids of the worker's pool processes (prefork), from /proc."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def _forget(broker_url: str, queue: str) -> None:
    """Remove the queue and the messages a killed worker left unacknowledged on it.

    Redis keeps a worker's unacknowledged messages and restores them to their queue
    after the visibility timeout (an hour); nobody would consume this queue by then.
    """
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=2)
    try:
        client.delete(queue)
        for tag, raw in client.hscan_iter("unacked"):
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    except redis.RedisError:
        pass  # a private Redis a test stopped: nothing left to clean
    finally:
        client.close()
