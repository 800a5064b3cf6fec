"""A decision's webhook through Redis and a real Celery worker, retried with backoff.

Starts ``celery -A hitl worker`` against Redis and the test database; the first
delivery attempt gets a 500, the worker retries after the backoff, the second
succeeds. CI runs it with REQUIRE_REDIS=1, so a missing Redis fails instead of skipping.
"""

import time
from pathlib import Path

import pytest

from reviews.models import WebhookAttempt, WebhookDelivery
from reviews.services.webhooks import webhook_endpoint_create
from reviews.tasks import webhook_deliver_task
from tests.celery_worker import celery_worker
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit
from tests.reviews.test_webhooks import SECRET, Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(monkeypatch):
    env = {"HITL_WEBHOOK_BACKOFF_SECONDS": "1", "HITL_WEBHOOK_ALLOW_PRIVATE": "1"}
    with celery_worker(monkeypatch, [webhook_deliver_task], env) as process:
        yield process


def test_a_failed_delivery_is_retried_by_the_worker_after_the_backoff(tenant, workflow, worker):
    server = Receiver(failures=1)
    try:
        webhook_endpoint_create(tenant=tenant, url=server.url, secret=SECRET)
        output = submit(workflow, 1, "medium-app")
        rita = reviewer(tenant, 1, "rita")
        review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES)

        deadline = time.monotonic() + 60
        delivery = None
        while time.monotonic() < deadline:
            delivery = WebhookDelivery.objects.for_tenant(tenant).first()
            if delivery is not None and delivery.status != "pending":
                break
            time.sleep(0.3)

        assert delivery is not None, "no delivery row: the decision did not enqueue one"
        assert (delivery.status, delivery.attempts) == ("succeeded", 2), worker.poll()
        attempts = list(WebhookAttempt.objects.for_tenant(tenant).order_by("attempted_at"))
        assert [attempt.status_code for attempt in attempts] == [500, 204]
        assert (attempts[1].attempted_at - attempts[0].attempted_at).total_seconds() >= 0.9  # the backoff
        assert len(server.received) == 2
        assert {headers["X-HITL-Delivery"] for headers, _ in server.received} == {str(delivery.pk)}
        assert output["id"] in server.received[1][1].decode()
    finally:
        server.close()
