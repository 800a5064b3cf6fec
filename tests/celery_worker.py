"""A real ``celery -A hitl worker`` on Redis and the test database, for the tests that need one.

The test process publishes through a producer of its own: the project's Celery app
runs tasks in-process during tests (no broker is configured for them).
"""

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import redis
from celery import Celery
from django.db import connection

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def celery_worker(monkeypatch, tasks, env: dict[str, str], pool: tuple[str, ...] = ("--pool", "solo")):
    """Start a worker with ``env`` added; route each task's ``delay`` of ``tasks`` to it.

    The worker consumes a queue of its own: two test processes (pytest-xdist, or two
    checkouts on one machine) may each run a worker on the same Redis at once.
    """
    queue = f"hitl-test-{uuid.uuid4().hex}"
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
            "CELERY_BROKER_URL": REDIS_URL,
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    producer = Celery("hitl-test-producer", broker=REDIS_URL)
    for task in tasks:
        monkeypatch.setattr(
            task, "delay", lambda *args, name=task.name: producer.send_task(name, args=list(args), queue=queue)
        )
    try:
        yield process
    finally:
        producer.close()
        process.terminate()
        redis.Redis.from_url(REDIS_URL).delete(queue)
        print(process.communicate(timeout=30)[0].decode(errors="replace"))  # shown by pytest only on failure
