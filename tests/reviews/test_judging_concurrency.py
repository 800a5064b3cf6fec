"""Judges finishing the same outputs at once on PostgreSQL, with the reconciler in the race.

Four judges each run twice over 60 outputs (once in id order, once reversed, as
redelivered messages would) while the reconciler re-enqueues them all: every output is
judged once by each judge, finished exactly once, and gets exactly its review tasks.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from policies.services import judge_create, policy_publish
from reviews.models import Judgement, Output, ReviewTask
from reviews.services.judging import judge_run, judges_reconcile
from tests.conftest import make_client
from tests.factories import output_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
POLICY = {
    "default_tier": "medium",
    "tiers": [{"name": "medium", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 60}],
}
CARD = "Your card 4242 4242 4242 4242 is on file."


def test_concurrent_judges_and_the_reconciler_finish_each_output_once(tenant, django_capture_on_commit_callbacks):
    policy_publish(tenant=tenant, document=POLICY)
    judges = [judge_create(tenant=tenant, data={"name": f"pii{number}", "kind": "pii"}) for number in range(4)]
    service = make_client(tenant, "service")
    ids = []
    for number in range(60):
        with django_capture_on_commit_callbacks(execute=False):  # the messages are "lost"
            body = output_payload(number, output=CARD if number % 2 else "Fine.")
            ids.append(service.post("/api/v1/outputs", body, format="json").json()["id"])
    Output.objects.for_tenant(tenant).update(judges_enqueued_at=timezone.now() - timedelta(days=1))
    errors: list[Exception] = []
    barrier = threading.Barrier(len(judges) * 2 + 1)

    def in_thread(work):
        barrier.wait()
        try:
            work()
        except Exception as error:  # collected, asserted below
            errors.append(error)
        finally:
            connection.close()

    work = [
        lambda judge=judge, order=order: judge_run(judge_id=judge.pk, output_ids=order)
        for judge in judges
        for order in (ids, ids[::-1])
    ]
    work.append(judges_reconcile)
    threads = [threading.Thread(target=in_thread, args=(item,)) for item in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Judgement.objects.for_tenant(tenant).count() == 60 * 4
    statuses = list(Output.objects.for_tenant(tenant).values_list("status", flat=True))
    assert statuses.count("pending_review") == 30 and statuses.count("auto_approved") == 30
    assert ReviewTask.objects.for_tenant(tenant).count() == 30  # one each for the 30 with a card number
