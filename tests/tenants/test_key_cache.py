"""``POST /api/v1/outputs`` takes its key from the process's cache and confirms it in its own
write statement (tenants.selectors.api_key_guard): whatever changed since the key was cached
(revoked, its person gone, a new policy) counts at once, and nothing is written for a key
that no longer works.

Every change below is made through the services, which do not touch this process's cache:
as another web process would make it."""

import random

import pytest
from django.db import connection
from django.test import override_settings

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish
from reviews.models import Output
from tenants.models import AuditEvent
from tenants.services import api_key_revoke, membership_delete
from tests.conftest import make_client
from tests.factories import output_payload

pytestmark = pytest.mark.django_db

URL = "/api/v1/outputs"


def _post(client, payload):
    return client.post(URL, payload, format="json")


def _stored(tenant, external_id) -> bool:
    return Output.objects.for_tenant(tenant).filter(external_id=external_id).exists()


def test_a_key_revoked_after_it_was_cached_stores_nothing_and_gets_401(tenant, service_client):
    assert _post(service_client, output_payload(1)).status_code == 201  # the key is cached now
    api_key_revoke(api_key=service_client.api_key)
    events = AuditEvent.objects.for_tenant(tenant).count()

    refused = _post(service_client, output_payload(2))
    assert refused.status_code == 401, refused.content
    assert not _stored(tenant, "ext-2")
    assert AuditEvent.objects.for_tenant(tenant).count() == events  # no output.received, no task
    # A repeat of what it stored before, an invalid body, a conflicting one: 401 all the same.
    assert _post(service_client, output_payload(1)).status_code == 401
    assert _post(service_client, output_payload(1, output="Another answer.")).status_code == 401
    assert _post(service_client, {"external_id": "no-application"}).status_code == 401
    assert service_client.post(URL, b"[1, 2]", content_type="application/json").status_code == 401


def test_a_person_who_left_stops_their_cached_key(tenant):
    client = make_client(tenant, "admin")  # a person's key (an admin key may submit)
    assert _post(client, output_payload(1)).status_code == 201
    membership_delete(membership=client.api_key.user.memberships.get(tenant=tenant))
    assert _post(client, output_payload(2)).status_code == 401
    assert not _stored(tenant, "ext-2")


def test_a_deactivated_person_stops_their_cached_key(tenant):
    client = make_client(tenant, "admin")
    assert _post(client, output_payload(1)).status_code == 201
    person = client.api_key.user
    person.is_active = False
    person.save(update_fields=["is_active"])
    assert _post(client, output_payload(2)).status_code == 401
    assert not _stored(tenant, "ext-2")


def test_a_policy_published_after_the_key_was_cached_decides_the_next_output(tenant, service_client):
    first = _post(service_client, output_payload(1, application="held"))
    assert first.status_code == 201
    rules = [{"name": "always", "tier": "critical", "match": {"application": "held"}}]
    published = policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "rules": rules})

    second = _post(service_client, output_payload(2, application="held"))
    assert second.status_code == 201
    body = second.json()
    assert first.json()["policy_version"] < published.version
    assert (body["policy_version"], body["risk_tier"], body["review_required"]) == (published.version, "critical", True)
    output = Output.objects.for_tenant(tenant).get(external_id="ext-2")
    assert (output.policy_version, output.risk_tier) == (published.version, "critical")
    assert output.tasks.count() >= 1


def test_a_cached_key_of_a_role_that_may_not_submit_gets_403_while_valid_and_401_once_revoked(tenant):
    viewer = make_client(tenant, "auditor")
    assert viewer.get(URL).status_code == 200  # a lookup: the key is cached now
    assert _post(viewer, output_payload(1)).status_code == 403
    api_key_revoke(api_key=viewer.api_key)
    assert _post(viewer, output_payload(1)).status_code == 401
    assert not _stored(tenant, "ext-1")


def test_another_tenants_cached_key_never_writes_here(tenant, other_tenant, service_client, other_service_client):
    assert _post(other_service_client, output_payload(1)).status_code == 201
    assert _post(other_service_client, output_payload(2)).status_code == 201  # from the cache on PostgreSQL
    assert not _stored(tenant, "ext-1") and not _stored(tenant, "ext-2")
    assert _stored(other_tenant, "ext-2")
    assert _post(service_client, output_payload(2)).status_code == 201  # the same external id, this tenant's own


def test_failures_of_a_revoked_cached_key_are_counted_as_any_bad_key(tenant, service_client, settings):
    settings.HITL_AUTH_FAILURES_PER_MINUTE = 2
    service_client.defaults["REMOTE_ADDR"] = f"10.{random.randrange(256)}.{random.randrange(256)}.7"
    assert _post(service_client, output_payload(1)).status_code == 201
    api_key_revoke(api_key=service_client.api_key)
    statuses = [_post(service_client, output_payload(n)).status_code for n in range(2, 6)]
    assert statuses[:2] == [401, 401] and set(statuses[2:]) == {429}, statuses


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the key cache serves PostgreSQL only")
def test_on_postgresql_the_cached_key_costs_no_lookup_and_its_touch_waits_for_one(tenant, service_client):
    from django.test.utils import CaptureQueriesContext

    assert _post(service_client, output_payload(1)).status_code == 201
    with CaptureQueriesContext(connection) as queries:
        assert _post(service_client, output_payload(2)).status_code == 201
    sql = [query["sql"] for query in queries.captured_queries]
    assert not any("hitl_api_key_lookup" in statement for statement in sql), sql
    assert not any('UPDATE "tenants_apikey"' in statement for statement in sql), sql  # no touch from the cache
    assert sum("tenants_apikey" in statement for statement in sql) == 1  # the guard, in the write statement


def test_with_the_cache_off_every_request_looks_its_key_up(tenant, service_client):
    with override_settings(HITL_API_KEY_CACHE_SECONDS=0):
        assert _post(service_client, output_payload(1)).status_code == 201
        api_key_revoke(api_key=service_client.api_key)
        assert _post(service_client, output_payload(2)).status_code == 401


def _count_policy_builds(monkeypatch) -> list:
    import policies.selectors as policy_selectors

    built, real = [], policy_selectors.CompiledPolicy

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(policy_selectors, "CompiledPolicy", counted)
    return built


def test_after_a_publish_the_policy_is_compiled_once_however_many_keys_were_cached(tenant, monkeypatch):
    # A cached key carries the configuration token of its lookup. Compiling for a replaced token
    # would evict the current policy from the process's cache, and the next stale key would
    # compile both again: a burst of compiles after every change (found by a review).
    clients = [make_client(tenant, "service") for _ in range(4)]
    for number, client in enumerate(clients):
        assert _post(client, output_payload(number)).status_code == 201
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY})
    built = _count_policy_builds(monkeypatch)
    for number, client in enumerate(clients):
        assert _post(client, output_payload(100 + number)).status_code == 201
    assert len(built) == 1


def test_a_wrong_secret_for_a_known_prefix_does_not_evict_the_key(tenant, service_client):
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    assert _post(service_client, output_payload(1)).status_code == 201
    attacker = APIClient(REMOTE_ADDR="10.9.9.9")  # a key's prefix is no secret: it names the key in listings
    attacker.credentials(HTTP_AUTHORIZATION=f"Bearer hitl_{service_client.api_key.prefix}_{'x' * 40}")
    assert _post(attacker, output_payload(2)).status_code == 401
    assert attacker.get(URL).status_code == 401
    assert not _stored(tenant, "ext-2")
    with CaptureQueriesContext(connection) as queries:
        assert _post(service_client, output_payload(3)).status_code == 201
    lookups = [query for query in queries.captured_queries if "hitl_api_key_lookup" in query["sql"]]
    assert not lookups or connection.vendor != "postgresql"


def test_an_unexpected_failure_with_a_revoked_cached_key_answers_401_not_500(tenant, service_client, monkeypatch):
    import reviews.apis.outputs as outputs_api

    assert _post(service_client, output_payload(1)).status_code == 201
    api_key_revoke(api_key=service_client.api_key)

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(outputs_api, "output_ingest", broken)
    # On PostgreSQL the key came from the cache and the handler failed before any write confirmed
    # it: it is looked up before the failure is answered. (On SQLite it was looked up first.)
    assert _post(service_client, output_payload(2)).status_code == 401
