"""Without a broker (the embedded default), webhook retries and lease sweeps still happen.

The embedded beat runs here in its own thread with its own database connection, as
in a web process, on periods shortened from seconds to a fraction of one.
"""

import time

import pytest
from django.db import OperationalError

from hitl.beat import EmbeddedBeat
from reviews.models import ReviewTask, WebhookAttempt, WebhookDelivery
from reviews.services.webhooks import webhook_endpoint_create
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit
from tests.reviews.test_webhooks import SECRET, Receiver

pytestmark = pytest.mark.django_db(transaction=True)  # the beat's thread must see what the test committed


@pytest.fixture
def embedded_beat(settings):
    """Starts the beat when the test has written what it needs (SQLite's in-memory test
    database refuses a write while another connection reads: "table is locked")."""
    assert settings.CELERY_TASK_ALWAYS_EAGER  # no broker: tasks run in the thread that sends them
    periods = {
        "reviews.tasks.webhook_sweep_task": 0.2,
        "reviews.tasks.tasks_release_expired_task": 0.2,
        "reviews.tasks.judges_reconcile_task": 0.2,
    }
    scheduler = EmbeddedBeat(periods, tick=0.05)
    yield scheduler
    scheduler.stop()
    assert not scheduler.running


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OperationalError:  # SQLite's in-memory test database: the beat is writing; look again
            pass
        time.sleep(0.05)
    return False


def test_a_failed_delivery_is_retried_after_its_backoff_without_a_worker(tenant, workflow, settings, embedded_beat):
    settings.HITL_WEBHOOK_BACKOFF_SECONDS = 1
    server = Receiver(failures=1)
    try:
        webhook_endpoint_create(tenant=tenant, url=server.url, secret=SECRET)
        submit(workflow, 1, "medium-app")
        rita = reviewer(tenant, 1, "rita")
        review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES)  # first attempt: 500
        embedded_beat.start()

        delivered = wait_for(lambda: WebhookDelivery.objects.for_tenant(tenant).get().status == "succeeded")

        embedded_beat.stop()
        assert delivered, WebhookDelivery.objects.for_tenant(tenant).values().get()
        attempts = list(WebhookAttempt.objects.for_tenant(tenant).order_by("attempted_at"))
        assert [attempt.status_code for attempt in attempts] == [500, 204]
        assert (attempts[1].attempted_at - attempts[0].attempted_at).total_seconds() >= 0.9  # after the backoff
        assert len({headers["X-HITL-Delivery"] for headers, _ in server.received}) == 1
    finally:
        server.close()


def test_an_expired_lease_returns_its_task_to_the_queue_without_a_worker(tenant, workflow, settings, embedded_beat):
    settings.HITL_LEASE_SECONDS = 1
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task_id = claim(rita).json()["id"]
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task_id).status == "claimed"
    bob = reviewer(tenant, 1, "bob")
    embedded_beat.start()

    released = wait_for(lambda: ReviewTask.objects.for_tenant(tenant).get(pk=task_id).status == "pending")

    embedded_beat.stop()
    assert released
    assert claim(bob).json()["id"] == task_id  # somebody else may take it now
