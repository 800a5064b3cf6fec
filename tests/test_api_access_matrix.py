"""Every endpoint against the access matrix: anonymous, bad key, revoked key, wrong
role, another tenant, allowed role. Denials must leave no trace.

A new endpoint must be added to ENDPOINTS: ``test_every_api_route_is_in_the_matrix``
fails otherwise.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from policies.defaults import DEFAULT_POLICY
from policies.models import Application, Judge, Policy, Rubric
from policies.services import judge_create, judge_flag_raise, policy_publish, rubric_publish
from quality.services import calibration_session_create, gold_items_import, golden_set_create
from reviews.models import (
    Certification,
    ComplianceExport,
    GoldenSet,
    GoldItem,
    Output,
    Queue,
    ReviewTask,
    WebhookDelivery,
)
from reviews.services.webhooks import webhook_endpoint_create
from tenants.models import ApiKeyRole
from tenants.services import PLATFORM_OPERATOR, api_key_revoke, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload
from tests.reviews.otlp_spans import agent_run, export, otlp_json

ALL_ROLES = tuple(ApiKeyRole.values)
CONFIG_READERS = frozenset({"admin", "auditor", "quality_lead", "reviewer"})


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: Callable[[dict], str]  # from the fixture's objects to a URL
    body: Callable[[], object] | None
    allowed: frozenset[str]
    addresses_object: bool  # the URL names one of tenant A's objects
    ok: frozenset[int] = frozenset({200, 201})  # what an allowed caller gets


ENDPOINTS = [
    Endpoint(
        "outputs",
        "post",
        lambda o: "/api/v1/outputs",
        lambda: output_payload(99),
        frozenset({"service", "admin"}),
        False,
    ),
    Endpoint("outputs", "get", lambda o: "/api/v1/outputs", None, frozenset(ALL_ROLES), False),
    Endpoint(
        "outputs-batch",
        "post",
        lambda o: "/api/v1/outputs/batch",
        lambda: {"items": [output_payload(98)]},
        frozenset({"service", "admin"}),
        False,
    ),
    Endpoint("output-detail", "get", lambda o: f"/api/v1/outputs/{o['output_id']}", None, frozenset(ALL_ROLES), True),
    Endpoint("session-detail", "get", lambda o: "/api/v1/sessions/session-of-a", None, frozenset(ALL_ROLES), True),
]
RUBRIC = {"name": "rubric-b", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}
ENDPOINTS += [
    Endpoint("policy", "get", lambda o: "/api/v1/policy", None, CONFIG_READERS, False),
    Endpoint("policy", "put", lambda o: "/api/v1/policy", lambda: DEFAULT_POLICY, frozenset({"admin"}), False),
    Endpoint("policy-history", "get", lambda o: "/api/v1/policy/history", None, frozenset({"admin", "auditor"}), False),
    Endpoint(
        "application-override",
        "put",
        lambda o: "/api/v1/applications/support-bot/override",
        lambda: {"mode": "review_all"},
        frozenset({"admin"}),
        False,
    ),
    Endpoint("rubrics", "get", lambda o: "/api/v1/rubrics", None, CONFIG_READERS, False),
    Endpoint("rubrics", "post", lambda o: "/api/v1/rubrics", lambda: RUBRIC, frozenset({"admin"}), False),
    Endpoint(
        "rubric-detail",
        "get",
        lambda o: f"/api/v1/rubrics/{o['rubric']}",
        None,
        CONFIG_READERS,
        True,
    ),
]
REVIEWERS = frozenset({"reviewer", "admin"})
ENDPOINTS += [
    Endpoint(
        "output-feedback",
        "post",
        lambda o: f"/api/v1/outputs/{o['output_id']}/feedback",
        lambda: {"rating": "up"},
        frozenset({"service", "admin"}),
        True,
    ),
    Endpoint(
        "tasks-claim", "post", lambda o: "/api/v1/tasks/claim", lambda: {}, REVIEWERS, False, frozenset({200, 204})
    ),
    # Allowed callers get past role and tenancy, then meet the lease: they did not claim A's task.
    Endpoint(
        "task-release",
        "post",
        lambda o: f"/api/v1/tasks/{o['task_id']}/release",
        None,
        REVIEWERS,
        True,
        frozenset({409}),
    ),
    Endpoint(
        "task-review",
        "post",
        lambda o: f"/api/v1/tasks/{o['task_id']}/review",
        lambda: {"decision": "approve"},
        REVIEWERS,
        True,
        frozenset({409}),
    ),
    Endpoint("webhooks", "get", lambda o: "/api/v1/webhooks", None, frozenset({"admin"}), False),
    Endpoint(
        "webhooks",
        "post",
        lambda o: "/api/v1/webhooks",
        lambda: {"url": "http://127.0.0.1:9/hook", "secret": "s" * 20},
        frozenset({"admin"}),
        False,
    ),
    Endpoint(
        "webhook-detail",
        "delete",
        lambda o: f"/api/v1/webhooks/{o['webhook_id']}",
        None,
        frozenset({"admin"}),
        True,
        frozenset({204}),
    ),
    Endpoint(
        "webhook-replay",
        "post",
        lambda o: f"/api/v1/webhooks/deliveries/{o['delivery_id']}/replay",
        None,
        frozenset({"admin"}),
        True,
        frozenset({202}),
    ),
]
JUDGE_READERS = frozenset({"admin", "auditor"})
ENDPOINTS += [
    Endpoint("judges", "get", lambda o: "/api/v1/judges", None, JUDGE_READERS, False),
    Endpoint(
        "judges",
        "post",
        lambda o: "/api/v1/judges",
        lambda: {"name": "length-b", "kind": "length", "params": {"max_chars": 10}},
        frozenset({"admin"}),
        False,
    ),
    Endpoint("judge-detail", "get", lambda o: f"/api/v1/judges/{o['judge_id']}", None, JUDGE_READERS, True),
    Endpoint(
        "judge-detail",
        "put",
        lambda o: f"/api/v1/judges/{o['judge_id']}",
        lambda: {"name": "changed", "kind": "banned", "params": {"phrases": ["x"]}},
        frozenset({"admin"}),
        True,
    ),
    Endpoint("judge-history", "get", lambda o: f"/api/v1/judges/{o['judge_id']}/history", None, JUDGE_READERS, True),
    Endpoint(
        "judge-agreement", "get", lambda o: f"/api/v1/judges/{o['judge_id']}/agreement", None, JUDGE_READERS, True
    ),
]
AUDIT_PERIOD = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
ENDPOINTS += [
    Endpoint(
        "audit-export", "get", lambda o: f"/api/v1/audit/export?{AUDIT_PERIOD}&format=jsonl", None, JUDGE_READERS, False
    ),
    Endpoint("audit-exports", "get", lambda o: "/api/v1/audit/exports", None, JUDGE_READERS, False),
    Endpoint(
        "audit-exports",
        "post",
        lambda o: "/api/v1/audit/exports",
        lambda: {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
        JUDGE_READERS,
        False,
        frozenset({202}),
    ),
    Endpoint(
        "audit-export-detail", "get", lambda o: f"/api/v1/audit/exports/{o['export_id']}", None, JUDGE_READERS, True
    ),
    # Allowed callers get past role and tenancy, then find A's export not built yet (in these tests).
    Endpoint(
        "audit-export-download",
        "get",
        lambda o: f"/api/v1/audit/exports/{o['export_id']}/download",
        None,
        JUDGE_READERS,
        True,
        frozenset({404}),
    ),
]
ENDPOINTS += [
    Endpoint("audit-public-key", "get", lambda o: "/api/v1/audit/public-key", None, frozenset(ALL_ROLES), False),
    Endpoint("audit-events", "get", lambda o: "/api/v1/audit/events", None, frozenset({"admin", "auditor"}), False),
]

ENDPOINTS += [
    Endpoint(
        "otlp-traces",
        "post",
        lambda o: "/api/otlp/v1/traces",
        lambda: otlp_json(export(agent_run())),
        frozenset({"service", "admin"}),
        False,
    ),
]
# The quality layer (docs/quality.md): golden sets, certifications, exams, a queue's certification rules.
QUALITY = frozenset({"admin", "quality_lead"})
OWN_OR_QUALITY = QUALITY | {"reviewer"}
ENDPOINTS += [
    Endpoint("golden-sets", "get", lambda o: "/api/v1/golden-sets", None, QUALITY, False),
    Endpoint(
        "golden-sets", "post", lambda o: "/api/v1/golden-sets", lambda: {"name": "gold-b", "skill": "x"}, QUALITY, False
    ),
    Endpoint("golden-set-detail", "get", lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}", None, QUALITY, True),
    Endpoint(
        "golden-set-items", "get", lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}/items", None, QUALITY, True
    ),
    # Allowed callers get past role and tenancy, then find no such output to promote (a 422 naming output_id).
    Endpoint(
        "golden-set-items",
        "post",
        lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}/items",
        lambda: {"output_id": "01890000-0000-7000-8000-000000000000"},
        QUALITY,
        True,
        frozenset({422}),
    ),
    Endpoint(
        "golden-set-item-detail",
        "delete",
        lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}/items/{o['gold_item_id']}",
        None,
        QUALITY,
        True,
    ),
    # Sent as JSON here: allowed callers meet the media type (an import is JSON Lines).
    Endpoint(
        "golden-set-import",
        "post",
        lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}/import",
        lambda: {"x": 1},
        QUALITY,
        True,
        frozenset({415}),
    ),
    Endpoint(
        "golden-set-export", "get", lambda o: f"/api/v1/golden-sets/{o['golden_set_id']}/export", None, QUALITY, True
    ),
    Endpoint("certifications", "get", lambda o: "/api/v1/certifications", None, OWN_OR_QUALITY, False),
    # A's certification is active: allowed callers get past role and tenancy, then meet its state.
    Endpoint(
        "certification-reinstate",
        "post",
        lambda o: f"/api/v1/certifications/{o['certification_id']}/reinstate",
        lambda: {},
        QUALITY,
        True,
        frozenset({409}),
    ),
    Endpoint(
        "certification-revoke",
        "post",
        lambda o: f"/api/v1/certifications/{o['certification_id']}/revoke",
        lambda: {"reason": "test"},
        QUALITY,
        True,
    ),
    Endpoint("exams", "get", lambda o: "/api/v1/exams", None, OWN_OR_QUALITY, False),
    Endpoint(
        "exams",
        "post",
        lambda o: "/api/v1/exams",
        lambda: {"queue": "no-such-queue"},
        REVIEWERS,
        False,
        frozenset({404}),
    ),
    # Every tenant has a queue named default: another tenant reads and changes its own.
    Endpoint(
        "queue-certification", "get", lambda o: "/api/v1/queues/default/certification", None, CONFIG_READERS, False
    ),
    Endpoint(
        "queue-certification",
        "put",
        lambda o: "/api/v1/queues/default/certification",
        lambda: {"requires_certification": False},
        QUALITY,
        False,
    ),
    Endpoint(
        "queue-recertification",
        "post",
        lambda o: "/api/v1/queues/default/recertification",
        lambda: {"reason": "rubric v2"},
        QUALITY,
        False,
    ),
]
CALIBRATING = frozenset({"reviewer", "quality_lead", "admin"})
ENDPOINTS += [
    Endpoint("calibration-sessions", "get", lambda o: "/api/v1/calibration/sessions", None, CALIBRATING, False),
    # Allowed callers get past role and tenancy, then meet the output check: no such output here.
    Endpoint(
        "calibration-sessions",
        "post",
        lambda o: "/api/v1/calibration/sessions",
        lambda: {
            "name": "n",
            "rubric": "secret-rubric-of-a",
            "outputs": ["0190f3a0-0000-7000-8000-000000000000"],
            "participants": [1, 2],
        },
        QUALITY,
        False,
        frozenset({404}),
    ),
    # Reviewers see the sessions they are invited to only: the keys' people are not.
    Endpoint(
        "calibration-session",
        "get",
        lambda o: f"/api/v1/calibration/sessions/{o['session_id']}",
        None,
        CALIBRATING,
        True,
        frozenset({200, 404}),
    ),
    Endpoint(
        "calibration-work",
        "get",
        lambda o: f"/api/v1/calibration/sessions/{o['session_id']}/work",
        None,
        CALIBRATING,
        True,
        frozenset({404}),
    ),
    Endpoint(
        "calibration-answers",
        "post",
        lambda o: f"/api/v1/calibration/sessions/{o['session_id']}/answers",
        lambda: {"item": 1, "decision": "approve", "scores": {"ok": True}},
        CALIBRATING,
        True,
        frozenset({404}),
    ),
    Endpoint(
        "calibration-close",
        "post",
        lambda o: f"/api/v1/calibration/sessions/{o['session_id']}/close",
        None,
        QUALITY,
        True,
    ),
    # Open: results wait for the close (409); for reviewers not invited, 404.
    Endpoint(
        "calibration-results",
        "get",
        lambda o: f"/api/v1/calibration/sessions/{o['session_id']}/results",
        None,
        CALIBRATING,
        True,
        frozenset({404, 409}),
    ),
    Endpoint("agreement", "get", lambda o: "/api/v1/agreement", None, QUALITY, False),
    Endpoint("agreement-pairs", "get", lambda o: "/api/v1/agreement/pairs", None, QUALITY, False),
    Endpoint("agreement-judges", "get", lambda o: "/api/v1/agreement/judges", None, QUALITY, False),
    Endpoint(
        "judge-flag-clear",
        "post",
        lambda o: f"/api/v1/judges/{o['judge_id']}/flag/clear",
        lambda: {"note": "looked"},
        QUALITY,
        True,
    ),
]
ENDPOINTS += [
    Endpoint(
        "metrics",
        "get",
        lambda o: (
            f"/api/v1/metrics?from={timezone.now().date() - timedelta(days=30)}"
            f"&to={timezone.now().date() + timedelta(days=1)}&group_by=reviewer"
        ),
        None,
        frozenset({"admin", "auditor", "quality_lead"}),
        False,
    ),
]
ENDPOINTS += [
    Endpoint(
        "datasets-fine-tuning",
        "get",
        lambda o: "/api/v1/datasets/fine-tuning?format=chat&decision=approved,corrected",
        None,
        frozenset({"admin", "quality_lead"}),
        False,
    ),
]
UNROUTED_NAMES = {"schema", "docs", "redoc", None}
# Strings only tenant A's objects contain: none may appear in an answer to tenant B.
SECRETS_OF_A = (
    "secret-rule-of-a",
    "secret-rubric-of-a",
    "secret-hook-of-a",
    "secret-judge-of-a",
    "secret-gold-of-a",
    "secret-gold-item-of-a",
    "secret-calibration-of-a",
)


@pytest.fixture
def world(tenant, other_tenant):
    """Two tenants, each with one output; the endpoint URLs point at tenant A's objects."""
    owner = make_client(tenant, "service")
    output_id = owner.post("/api/v1/outputs", output_payload(1, session_id="session-of-a"), format="json").json()["id"]
    make_client(other_tenant, "service").post("/api/v1/outputs", output_payload(1, output="B"), format="json")
    rules = [
        {"name": "secret-rule-of-a", "tier": "high", "match": {"application": "a-only"}},
        {"name": "held", "tier": "critical", "match": {"application": "held"}},
    ]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "rules": rules})
    rubric_publish(tenant=tenant, document={**RUBRIC, "name": "secret-rubric-of-a"})
    held = owner.post("/api/v1/outputs", output_payload(2, application="held"), format="json").json()
    task = ReviewTask.objects.for_tenant(tenant).filter(output_id=held["id"]).first()
    webhook = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/secret-hook-of-a", secret="x" * 20)
    delivery = WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=webhook, output_id=held["id"], payload={"event": "output.decided"}, status="failed"
    )
    judge = judge_create(
        tenant=tenant,
        data={"name": "secret-judge-of-a", "kind": "banned", "params": {"phrases": ["x"]}, "applications": ["none"]},
    )
    judge_flag_raise(
        tenant=tenant, judge=judge, kappa=0.1, agreement_rate=0.5, compared=30, threshold=0.4, sample_rate=0.5
    )
    people = []
    for name in ("calib-a", "calib-b"):
        person = UserFactory(username=name)
        membership_create(tenant=tenant, user=person, role="reviewer")
        people.append(person.pk)
    session = calibration_session_create(
        tenant=tenant,
        user=None,
        name="secret-calibration-of-a",
        rubric_name="secret-rubric-of-a",
        output_ids=[output_id],
        participant_ids=people,
    )
    export = ComplianceExport.objects.for_tenant(tenant).create(
        period_start=timezone.now() - timedelta(days=1), period_end=timezone.now()
    )
    golden_set = golden_set_create(tenant=tenant, name="secret-gold-of-a", queue="default", actor=PLATFORM_OPERATOR)
    line = {
        "application": "support-bot",
        "input": "q",
        "output": "secret-gold-item-of-a",
        "expected_decision": "reject",
    }
    gold_items_import(tenant=tenant, golden_set_id=golden_set.pk, body=orjson.dumps(line), actor=PLATFORM_OPERATOR)
    certified = UserFactory()
    certification = Certification.objects.for_tenant(tenant).create(
        user=certified,
        queue=Queue.objects.for_tenant(tenant).get(name="default"),
        valid_from=timezone.now(),
        valid_until=timezone.now() + timedelta(days=30),
    )
    objects = {
        "session_id": session.pk,
        "golden_set_id": golden_set.pk,
        "gold_item_id": GoldItem.objects.for_tenant(tenant).get().pk,
        "certification_id": certification.pk,
        "export_id": export.pk,
        "judge_id": judge.pk,
        "output_id": output_id,
        "rubric": "secret-rubric-of-a",
        "task_id": task.pk,
        "webhook_id": webhook.pk,
        "delivery_id": delivery.pk,
    }
    return {"tenant": tenant, "other_tenant": other_tenant, "objects": objects}


def _call(client: APIClient, endpoint: Endpoint, objects: dict):
    kwargs = {"format": "json"} if endpoint.body else {}
    data = endpoint.body() if endpoint.body else None
    return getattr(client, endpoint.method)(endpoint.path(objects), data, **kwargs)


def _snapshot():
    return (
        sorted(ReviewTask.unscoped.values_list("id", "status", "claimed_by_id")),
        sorted(WebhookDelivery.unscoped.values_list("id", "status", "attempts")),
        sorted(Output.unscoped.values_list("tenant_id", "external_id", "content_hash")),
        sorted(Policy.unscoped.values_list("tenant_id", "version")),
        sorted(Application.unscoped.values_list("tenant_id", "name", "override")),
        sorted(Rubric.unscoped.values_list("tenant_id", "name", "version")),
        sorted(Judge.unscoped.values_list("tenant_id", "name", "version")),
        sorted(GoldenSet.unscoped.values_list("tenant_id", "name", "version")),
        sorted(Certification.unscoped.values_list("tenant_id", "id", "status")),
        sorted(Queue.unscoped.values_list("tenant_id", "name", "requires_certification")),
    )


def _tenant_snapshot(tenant):
    return (
        sorted(ReviewTask.objects.for_tenant(tenant).values_list("id", "status", "claimed_by_id")),
        sorted(WebhookDelivery.objects.for_tenant(tenant).values_list("id", "status", "attempts")),
        sorted(
            __import__("reviews.models")
            .models.WebhookEndpoint.objects.for_tenant(tenant)
            .values_list("id", "is_active")
        ),
        set(Output.objects.for_tenant(tenant).values_list("external_id", "content_hash")),
        list(Policy.objects.for_tenant(tenant).values_list("version", "document")),
        list(Application.objects.for_tenant(tenant).values_list("name", "override")),
        list(Rubric.objects.for_tenant(tenant).values_list("name", "version")),
        list(Judge.objects.for_tenant(tenant).values_list("name", "version")),
        list(GoldenSet.objects.for_tenant(tenant).values_list("name", "version")),
        list(Certification.objects.for_tenant(tenant).values_list("id", "status")),
        sorted(Queue.objects.for_tenant(tenant).values_list("name", "requires_certification")),
    )


def _ids(endpoint):
    return f"{endpoint.method} {endpoint.name}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
@pytest.mark.parametrize(
    "credentials",
    ["", "Bearer", "Bearer nonsense", "Basic dXNlcjpwdw==", "Bearer hitl_000000000000_wrong"],
)
def test_without_a_valid_key_is_401_and_changes_nothing(world, endpoint, credentials):
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    before = _snapshot()

    response = _call(client, endpoint, world["objects"])

    assert response.status_code == 401
    assert response.json()["code"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_revoked_key_is_401(world, endpoint):
    client = make_client(world["tenant"], sorted(endpoint.allowed)[0])
    api_key_revoke(api_key=client.api_key)
    before = _snapshot()

    response = _call(client, endpoint, world["objects"])

    assert response.status_code == 401
    assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
@pytest.mark.parametrize("role", ALL_ROLES)
def test_role_matrix(world, endpoint, role):
    client = make_client(world["tenant"], role)
    before = _snapshot()

    response = _call(client, endpoint, world["objects"])

    if role in endpoint.allowed:
        assert response.status_code in endpoint.ok, response.content
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert role in response.json()["message"]
        assert _snapshot() == before


@pytest.mark.parametrize(
    ("endpoint", "role"),
    [(endpoint, role) for endpoint in ENDPOINTS for role in sorted(endpoint.allowed)],
    ids=lambda value: value if isinstance(value, str) else _ids(value),
)
def test_another_tenant_gets_404_or_sees_nothing(world, endpoint, role):
    outsider = make_client(world["other_tenant"], role)
    mine = _tenant_snapshot(world["tenant"])

    response = _call(outsider, endpoint, world["objects"])

    if endpoint.addresses_object:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    else:
        assert response.status_code in endpoint.ok
    text = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
    assert world["objects"]["output_id"] not in text
    assert not [secret for secret in SECRETS_OF_A if secret in text]
    # Whatever the outsider did, tenant A's rows are untouched.
    assert _tenant_snapshot(world["tenant"]) == mine


def test_another_tenants_list_holds_only_its_own(world, client_for):
    outsider = client_for(world["other_tenant"], "auditor")

    results = outsider.get("/api/v1/outputs").json()["results"]

    assert [item["external_id"] for item in results] == ["ext-1"]
    assert world["objects"]["output_id"] not in {item["id"] for item in results}
    filtered = outsider.get("/api/v1/outputs", {"application": "support-bot", "status": "received"}).json()
    assert world["objects"]["output_id"] not in {item["id"] for item in filtered["results"]}


def _routes(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def test_every_api_route_and_method_is_in_the_matrix():
    covered = {(endpoint.name, endpoint.method.upper()) for endpoint in ENDPOINTS}
    served = set()
    for route, pattern in _routes(get_resolver()):
        if not route.startswith(("api/v1/", "api/otlp/")) or pattern.name in UNROUTED_NAMES - {None}:
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        if view_class is None:  # the JSON 404 catch-all
            assert route == "api/v1/^.*$", f"unnamed API route {route}"
            continue
        assert pattern.name, f"API route {route} needs a name"
        served |= {(pattern.name, method) for method in getattr(view_class, "permission_map", {})}
    assert served == covered, f"missing from ENDPOINTS: {served - covered}; stale: {covered - served}"
