"""GET /api/v1/audit/events: the tenant's audit log, newest first, cursor-paginated, filtered."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenants.audit import SYSTEM, Actor, audit_record
from tenants.models import AuditEvent
from tests.conftest import make_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/audit/events"


@pytest.fixture
def logged(tenant):
    admin = make_client(tenant, "admin")
    admin.auditor = make_client(tenant, "auditor")  # made first: creating a key is an event too
    with transaction.atomic():
        for number in range(5):
            audit_record(
                tenant=tenant,
                actor=Actor.of_key(admin.api_key) if number % 2 else SYSTEM,
                kind="queue.updated" if number < 3 else "task.claimed",
                object_type="queue" if number < 3 else "task",
                object_id=f"obj-{number}",
                data={"n": number},
            )
    return admin


def test_newest_first_with_every_field(tenant, logged):
    body = logged.auditor.get(URL).json()
    seqs = [item["seq"] for item in body["results"]]
    assert seqs == sorted(seqs, reverse=True)
    newest = AuditEvent.objects.for_tenant(tenant).order_by("-seq").first()
    assert body["results"][0] == {
        "seq": newest.seq,
        "at": newest.at.isoformat().replace("+00:00", "Z"),
        "kind": "task.claimed",
        "actor_person": None,
        "actor_key": None,
        "actor_role": "system",
        "object_type": "task",
        "object_id": "obj-4",
        "data": {"n": 4},
        "prev_hash": newest.prev_hash,
        "hash": newest.hash,
    }


def test_filters(tenant, logged):
    client = logged.auditor

    def objects(**params):
        return [item["object_id"] for item in client.get(URL, params).json()["results"]]

    assert objects(kind="task.claimed") == ["obj-4", "obj-3"]
    assert objects(kind="task.") == ["obj-4", "obj-3"]
    assert objects(object_type="queue", object_id="obj-1") == ["obj-1"]
    assert objects(key=logged.api_key.pk, object_type="queue") == ["obj-1"]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert objects(**{"from": later}) == []
    assert "obj-0" in objects(to=later)
    assert client.get(URL, {"kind": ""}).status_code == 400
    assert client.get(URL, {"person": "x"}).status_code == 400


def test_cursor_pages_cover_the_log_once(tenant, logged):
    client = logged.auditor
    seen, url = [], URL + "?page_size=2"
    while url:
        body = client.get(url).json()
        seen += [item["seq"] for item in body["results"]]
        url = body["next"]
    assert seen == list(AuditEvent.objects.for_tenant(tenant).order_by("-seq").values_list("seq", flat=True))
    assert client.get(URL, {"cursor": "forged"}).status_code == 422


def test_another_tenants_auditor_sees_none_of_it(tenant, other_tenant, logged):
    results = make_client(other_tenant, "auditor").get(URL, {"object_type": "task"}).json()["results"]
    assert results == []


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("actor_filter", "index"), [("person", "auditevent_tenant_person"), ("key", "auditevent_tenant_key")]
)
def test_an_actors_events_are_read_in_order_from_their_index(tenant, logged, actor_filter, index):
    """The API's page of one actor's events (the statement it sends, captured) is an ordered scan
    of that actor's index: no sort, and no read of the events of everyone else."""
    actor = {"person": logged.api_key.user_id, "key": logged.api_key.pk}[actor_filter]  # (the admin's key and person)
    with CaptureQueriesContext(connection) as captured:
        assert logged.auditor.get(URL, {actor_filter: actor}).status_code == 200
    [page] = [query["sql"] for query in captured if 'FROM "tenants_auditevent"' in query["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tenants_auditevent")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few rows: else a scan of the table is cheapest
        cursor.execute("EXPLAIN " + page)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan Backward using {index}" in plan, plan
    assert "Sort" not in plan, plan
