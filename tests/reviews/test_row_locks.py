"""Services lock the rows they update with FOR NO KEY UPDATE, never FOR UPDATE.

A foreign-key check takes a key-share lock on the row it references, which FOR UPDATE
blocks and FOR NO KEY UPDATE does not. So with FOR UPDATE, an admin changing a queue held
every ingest that routed a task to that queue until the change committed; and since that
change then appends its audit event (the tenant's chain row, which the ingest's own append
holds until its commit), the two could deadlock.
"""

import re
import threading
from pathlib import Path

import pytest

from reviews.models import Queue, ReviewTask
from tests.factories import output_payload

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("hitl", "tenants", "policies", "reviews", "quality")


def test_no_service_takes_a_lock_that_blocks_foreign_key_checks():
    found = []
    for package in DOMAIN:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                plain_orm_lock = "select_for_update(" in code and "no_key=True" not in code
                plain_sql_lock = re.search(r"(?<!KEY )\bFOR UPDATE(?= OF| SKIP| NOWAIT|\"|')", code)
                if plain_orm_lock or plain_sql_lock:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "lock with FOR NO KEY UPDATE (select_for_update(no_key=True)):\n" + "\n".join(found)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_changing_a_queue_does_not_hold_the_ingest_that_routes_to_it(
    tenant, service_client, predictable_policy, monkeypatch
):
    from django.db import connection

    from hitl.tenancy import tenant_scope
    from reviews.services import gold
    from tenants.audit import SYSTEM

    queue = Queue.objects.for_tenant(tenant).get()  # the tenant's default queue: where 'held' outputs go
    locked, release = threading.Event(), threading.Event()
    real_config_changed = gold.tenant_config_changed

    def paused(**kwargs):  # the admin's transaction holds the queue's row here, its change made
        real_config_changed(**kwargs)
        locked.set()
        assert release.wait(30)

    monkeypatch.setattr(gold, "tenant_config_changed", paused)
    failures = []

    def admin():
        try:
            with tenant_scope(tenant):
                gold.queue_certification_rules_set(
                    tenant=tenant, queue_id=queue.pk, rules={"exam_pass_mark": 0.9}, actor=SYSTEM
                )
        except Exception as error:  # reported by the test below
            failures.append(error)
        finally:
            connection.close()

    answers = []

    def ingest():
        try:
            answers.append(service_client.post("/api/v1/outputs", output_payload(1, application="held"), format="json"))
        finally:
            connection.close()

    changing = threading.Thread(target=admin)
    changing.start()
    try:
        assert locked.wait(30)
        submitting = threading.Thread(target=ingest)
        submitting.start()
        submitting.join(5)
        finished_while_locked = not submitting.is_alive()
    finally:
        release.set()
        changing.join(30)
    submitting.join(30)
    assert not failures
    assert finished_while_locked, "the ingest waited for the admin's transaction"
    assert answers[0].status_code == 201 and answers[0].json()["review_required"] is True
    assert set(ReviewTask.objects.for_tenant(tenant).values_list("queue_id", flat=True)) == {queue.pk}
    queue.refresh_from_db()
    assert queue.exam_pass_mark == 0.9
