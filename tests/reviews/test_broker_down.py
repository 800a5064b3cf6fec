"""The broker down while requests commit: the requests answer as usual, the sweeps send later.

Here ``delay`` raises what Celery raises when Redis refuses the connection; the test of
a real Redis stopped and started again is in ``test_faults_redis.py``.
"""

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from hitl.enqueue import enqueue_on_commit
from policies.services import judge_create, policy_publish
from reviews import tasks
from reviews.models import Judgement, Output, WebhookDelivery
from reviews.services.judging import judges_reconcile
from reviews.services.webhooks import webhook_deliveries_due, webhook_endpoint_create
from tests.conftest import make_client
from tests.factories import output_payload
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

REFUSED = BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
POLICY = {
    "default_tier": "medium",
    "tiers": [{"name": "medium", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 60}],
}


@pytest.fixture
def broker_down(monkeypatch, settings):
    """Every message refused, as with Redis stopped; the sends are counted."""
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker is configured (and down)
    sent = []

    def refuse(*args):
        sent.append(args)
        raise REFUSED

    for task in (tasks.judges_run_task, tasks.webhook_deliver_task):
        monkeypatch.setattr(task, "delay", refuse)
    return sent


def test_an_ingest_commits_and_answers_when_its_judges_cannot_be_enqueued(
    tenant, broker_down, settings, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    policy_publish(tenant=tenant, document=POLICY)
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    judge_create(tenant=tenant, data={"name": "short", "kind": "length", "params": {"max_chars": 1000}})
    service = make_client(tenant, "service")

    with django_capture_on_commit_callbacks(execute=True):
        one = service.post("/api/v1/outputs", output_payload(1), format="json")
        batch = service.post("/api/v1/outputs/batch", {"items": [output_payload(2), output_payload(3)]}, format="json")

    assert (one.status_code, batch.status_code) == (201, 200)
    assert one.json()["status"] == "judging"
    assert len(broker_down) == 2  # one message per request was tried, and no more after it failed
    assert "could not enqueue the judges of 1 outputs" in caplog.text
    # Due for the reconciler's next run, not one timeout later: it sends them once the broker is back.
    monkeypatch.undo()
    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert judges_reconcile(now=timezone.now()) == 3
    assert not Output.objects.for_tenant(tenant).filter(status="judging").exists()
    assert Judgement.objects.for_tenant(tenant).count() == 6


def test_a_decision_commits_and_answers_when_its_webhook_cannot_be_enqueued(
    tenant, workflow, broker_down, caplog, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(tenant=tenant, url="https://hooks.example/a", secret="s" * 20)
    webhook_endpoint_create(tenant=tenant, url="https://hooks.example/b", secret="s" * 20)
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")

    with django_capture_on_commit_callbacks(execute=True):
        response = review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES)

    assert response.status_code == 201
    assert len(broker_down) == 1  # the second delivery was not tried after the first failed
    assert "could not enqueue 2 webhook deliveries" in caplog.text
    deliveries = {str(pk) for pk in WebhookDelivery.objects.for_tenant(tenant).values_list("pk", flat=True)}
    assert len(deliveries) == 2 and deliveries <= set(webhook_deliveries_due())  # the sweep sends them


def test_a_replay_is_accepted_when_the_broker_is_down(
    tenant, workflow, broker_down, django_capture_on_commit_callbacks
):
    webhook_endpoint_create(tenant=tenant, url="https://hooks.example/a", secret="s" * 20)
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    with django_capture_on_commit_callbacks(execute=True):
        review(rita, claim(rita).json()["id"], decision="approve", scores=GOOD_SCORES)
    delivery = WebhookDelivery.objects.for_tenant(tenant).get()

    with django_capture_on_commit_callbacks(execute=True):
        response = make_client(tenant, "admin").post(f"/api/v1/webhooks/deliveries/{delivery.pk}/replay")

    assert response.status_code == 202
    assert str(delivery.pk) in webhook_deliveries_due()


def test_other_errors_of_an_enqueue_still_propagate(db, django_capture_on_commit_callbacks):
    def broken():
        raise ValueError("a bug, not the broker")

    with pytest.raises(ValueError, match="a bug"), django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit(broken, what="something")
