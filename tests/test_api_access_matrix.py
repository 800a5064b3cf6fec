"""Every endpoint against the access matrix: anonymous, bad key, revoked key, wrong
role, another tenant, allowed role. Denials must leave no trace.

A new endpoint must be added to ENDPOINTS: ``test_every_api_route_is_in_the_matrix``
fails otherwise.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from reviews.models import Output
from tenants.models import ApiKeyRole
from tenants.services import api_key_revoke
from tests.conftest import make_client
from tests.factories import output_payload

ALL_ROLES = tuple(ApiKeyRole.values)


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: Callable[[dict], str]  # from the fixture's objects to a URL
    body: Callable[[], object] | None
    allowed: frozenset[str]
    addresses_object: bool  # the URL names one of tenant A's objects


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
]
UNROUTED_NAMES = {"schema", "docs", "redoc", None}


@pytest.fixture
def world(tenant, other_tenant):
    """Two tenants, each with one output; the endpoint URLs point at tenant A's objects."""
    owner = make_client(tenant, "service")
    output_id = owner.post("/api/v1/outputs", output_payload(1), format="json").json()["id"]
    make_client(other_tenant, "service").post("/api/v1/outputs", output_payload(1, output="B"), format="json")
    return {"tenant": tenant, "other_tenant": other_tenant, "objects": {"output_id": output_id}}


def _call(client: APIClient, endpoint: Endpoint, objects: dict):
    kwargs = {"format": "json"} if endpoint.body else {}
    data = endpoint.body() if endpoint.body else None
    return getattr(client, endpoint.method)(endpoint.path(objects), data, **kwargs)


def _snapshot():
    return sorted(Output.unscoped.values_list("tenant_id", "external_id", "content_hash"))


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
        assert response.status_code in (200, 201), response.content
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
        assert role in response.json()["message"]
        assert _snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
def test_another_tenant_gets_404_or_sees_nothing(world, endpoint):
    role = "admin"
    outsider = make_client(world["other_tenant"], role)
    mine = set(Output.objects.for_tenant(world["tenant"]).values_list("external_id", "content_hash"))

    response = _call(outsider, endpoint, world["objects"])

    if endpoint.addresses_object:
        assert response.status_code == 404
        assert response.json() == {"code": "not_found", "message": "Output not found."}
    else:
        assert response.status_code in (200, 201)
        assert world["objects"]["output_id"] not in response.content.decode()
    # Whatever the outsider did, tenant A's rows are untouched.
    assert set(Output.objects.for_tenant(world["tenant"]).values_list("external_id", "content_hash")) == mine


def test_another_tenants_list_holds_only_its_own(world, client_for):
    outsider = client_for(world["other_tenant"], "auditor")

    results = outsider.get("/api/v1/outputs").json()["results"]

    assert [item["external_id"] for item in results] == ["ext-1"]
    assert world["objects"]["output_id"] not in {item["id"] for item in results}
    filtered = outsider.get("/api/v1/outputs", {"application": "support-bot", "status": "received"}).json()
    assert world["objects"]["output_id"] not in {item["id"] for item in filtered["results"]}


def _route_names(resolver, prefix=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _route_names(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def test_every_api_route_is_in_the_matrix():
    covered = {endpoint.name for endpoint in ENDPOINTS}
    api_routes = {name for route, name in _route_names(get_resolver()) if route.startswith("api/v1/")}
    assert api_routes - UNROUTED_NAMES <= covered, f"add to ENDPOINTS: {api_routes - UNROUTED_NAMES - covered}"
