"""Redis stopped while requests commit: they answer as usual, and nothing is stuck once it is back.

A private ``redis-server`` on a free loopback port (nothing saved to disk: what was
queued when it stopped is gone, the worst case) is the broker of a real Celery worker.
While it is stopped, outputs are submitted and a decision is made: every request
commits and answers 2xx. Redis comes back empty; the reconciler and the webhook sweep
(``celery beat`` would run them) find the work in the database, and the worker
finishes it, exactly once.
"""

import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

from policies.services import judge_create
from reviews.models import Judgement, Output, WebhookDelivery
from reviews.services.judging import judges_reconcile
from reviews.services.webhooks import webhook_endpoint_create
from reviews.tasks import judges_run_task, webhook_deliver_task, webhook_sweep_task
from tests.celery_worker import celery_worker
from tests.conftest import REQUIRE_REDIS
from tests.factories import output_payload
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit
from tests.reviews.test_webhooks import SECRET, Receiver

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [
    pytest.mark.postgres,  # the worker is another process: it needs the test database on a server
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not REDIS_SERVER and not REQUIRE_REDIS, reason="needs redis-server on the PATH"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:``port``, in memory only, started and stopped by the test."""

    def __init__(self):
        assert REDIS_SERVER, "REQUIRE_REDIS=1 but redis-server is not on the PATH"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_requests_commit_while_redis_is_down_and_nothing_is_stuck_once_it_is_back(
    tenant, workflow, private_redis, monkeypatch
):
    # Outputs of "quiet-app" are judged (never sampled); "medium-app" ones are reviewed (never judged).
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii", "applications": ["quiet-app"]})
    receiver = Receiver()
    webhook_endpoint_create(tenant=tenant, url=receiver.url, secret=SECRET)
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()
    env = {"HITL_JUDGE_ALLOW_PRIVATE": "1", "HITL_WEBHOOK_ALLOW_PRIVATE": "1"}
    service = workflow["service"]
    try:
        with celery_worker(monkeypatch, [judges_run_task, webhook_deliver_task], env, broker_url=private_redis.url):
            private_redis.stop()

            started = time.monotonic()
            answers = [
                service.post("/api/v1/outputs", output_payload(n, application="quiet-app"), format="json")
                for n in range(2, 5)
            ]
            answers.append(
                service.post(
                    "/api/v1/outputs/batch",
                    {"items": [output_payload(n, application="quiet-app") for n in range(5, 9)]},
                    format="json",
                )
            )
            answers.append(review(rita, task["id"], decision="approve", scores=GOOD_SCORES))
            elapsed = time.monotonic() - started

            assert [answer.status_code for answer in answers] == [201, 201, 201, 200, 201]
            assert elapsed < 15, f"five requests took {elapsed:.1f} s with the broker down"
            judging = Output.objects.for_tenant(tenant).filter(application="quiet-app")
            assert judging.filter(status="judging").count() == 7  # committed, waiting for their judge
            delivery = WebhookDelivery.objects.for_tenant(tenant).get()
            assert delivery.status == "pending" and receiver.received == []

            private_redis.start()  # back, and empty
            # What beat runs: the reconciler (the outputs are due at once) and the webhook sweep.
            assert judges_reconcile() == 7
            assert webhook_sweep_task() == 1

            assert wait_for(lambda: not judging.filter(status="judging").exists())
            assert wait_for(lambda: WebhookDelivery.objects.for_tenant(tenant).get().status == "succeeded")
    finally:
        receiver.close()

    assert Judgement.objects.for_tenant(tenant).count() == 7  # one verdict per output
    assert set(judging.values_list("status", flat=True)) == {"auto_approved"}
    assert len(receiver.received) == 1
    assert receiver.received[0][0]["X-HITL-Delivery"] == str(WebhookDelivery.objects.for_tenant(tenant).get().pk)
    assert os.environ.get("CELERY_BROKER_URL", "") == ""  # the test process itself never had a broker
