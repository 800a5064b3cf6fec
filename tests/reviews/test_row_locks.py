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


def _thread(target, errors: dict, name: str) -> threading.Thread:
    """``target`` in a daemon thread with its own connection, which waits for a lock 20 s at most;
    an error lands in ``errors[name]``."""
    from django.db import connection

    def body():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '20s'")
            target()
        except Exception as error:  # asserted by the test
            errors[name] = error
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def _paused_queue_change(monkeypatch, tenant, queue, errors: dict) -> tuple[threading.Thread, threading.Event]:
    """An admin's change of a queue's certification rules, paused after it changed the queue and
    the tenant's configuration token (both rows locked), before its audit append and COMMIT."""
    from hitl.tenancy import tenant_scope
    from reviews.services import gold
    from tenants.audit import SYSTEM

    locked, release = threading.Event(), threading.Event()
    real_config_changed = gold.tenant_config_changed

    def paused(**kwargs):
        real_config_changed(**kwargs)
        locked.set()
        assert release.wait(60)

    monkeypatch.setattr(gold, "tenant_config_changed", paused)

    def change():
        with tenant_scope(tenant):
            gold.queue_certification_rules_set(
                tenant=tenant, queue_id=queue.pk, rules={"exam_pass_mark": 0.9}, actor=SYSTEM
            )

    thread = _thread(change, errors, "admin")
    assert locked.wait(30), errors
    return thread, release


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_changing_a_queue_does_not_hold_the_ingest_that_routes_to_it(
    tenant, service_client, predictable_policy, monkeypatch
):
    queue = Queue.objects.for_tenant(tenant).get()  # the tenant's default queue: where 'held' outputs go
    errors, answers = {}, []
    admin, release = _paused_queue_change(monkeypatch, tenant, queue, errors)
    try:
        submitting = _thread(
            lambda: answers.append(
                service_client.post("/api/v1/outputs", output_payload(1, application="held"), format="json")
            ),
            errors,
            "ingest",
        )
        submitting.join(60)  # with FOR UPDATE on the queue, it waited here until its lock timeout
        assert not submitting.is_alive() and "ingest" not in errors, errors
    finally:
        release.set()
        admin.join(60)
    assert not admin.is_alive() and not errors, errors
    assert answers[0].status_code == 201 and answers[0].json()["review_required"] is True
    assert set(ReviewTask.objects.for_tenant(tenant).values_list("queue_id", flat=True)) == {queue.pk}
    queue.refresh_from_db()
    assert queue.exam_pass_mark == 0.9
