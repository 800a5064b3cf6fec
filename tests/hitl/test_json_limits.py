"""Stored data can always be read back: what JSON clients cannot round-trip is refused at the
edge naming the field, and what was stored before that never makes a read fail."""

import copy
import json

import pytest

from hitl.json import dumps
from hitl.json_limits import MAX_DEPTH, MAX_SAFE_INTEGER, json_value_problem
from policies.defaults import DEFAULT_POLICY
from policies.models import Policy, Rubric
from reviews.models import Output
from tests.factories import output_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def service(tenant, client_for):
    return client_for(tenant, "service")


@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, "admin")


def nested(depth: int) -> dict:
    """An object ``depth`` containers deep (itself included)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def post_raw(client, url: str, body: bytes):
    return client.generic("POST", url, body, content_type="application/json")


# The edge ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"n": MAX_SAFE_INTEGER + 1}, "metadata.n"),
        ({"n": -MAX_SAFE_INTEGER - 1}, "metadata.n"),
        ({"n": 1e20}, "metadata.n"),  # PostgreSQL's jsonb keeps it as the integer 100000000000000000000
        ({"deep": [{"x": [1, 2, 2**64 - 1]}]}, "metadata.deep.0.x.2"),
    ],
)
def test_a_number_clients_cannot_read_back_is_refused_naming_the_field(service, tenant, metadata, field):
    response = service.post("/api/v1/outputs", output_payload(1, metadata=metadata), format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert "2^53 - 1" in response.json()["message"]
    assert not Output.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("literal", "field"),
    [
        (b"100000000000000000000000000000", "metadata.n"),  # orjson reads it as a float
        (b"1e400", "metadata.n"),  # overflows a double
        (b"-1e400", "metadata.n"),
        (b"NaN", "metadata.n"),
        (b"Infinity", "metadata.n"),
        (b"1" + b"0" * 400, "metadata.n"),
    ],
)
def test_numbers_the_json_parser_refuses_are_named_too(service, tenant, literal, field):
    body = dumps(output_payload(1)).replace(b'"locale":"en"', b'"n":' + literal)

    response = post_raw(service, "/api/v1/outputs", body)

    assert response.status_code == 400, response.content
    assert list(response.json()["fields"]) == [field]
    assert not Output.objects.for_tenant(tenant).exists()


def test_the_largest_safe_numbers_and_ordinary_floats_are_stored_and_read_back(service):
    metadata = {"max": MAX_SAFE_INTEGER, "min": -MAX_SAFE_INTEGER, "cost": 0.00123, "tiny": 1e-300, "big": 9e15}

    created = service.post("/api/v1/outputs", output_payload(1, metadata=metadata), format="json")

    assert created.status_code == 201, created.content
    assert service.get(f"/api/v1/outputs/{created.json()['id']}").json()["metadata"] == metadata


def test_nesting_is_limited_and_the_deepest_part_named(service, tenant):
    fits = service.post("/api/v1/outputs", output_payload(1, metadata=nested(MAX_DEPTH - 1)), format="json")
    too_deep = service.post("/api/v1/outputs", output_payload(2, metadata=nested(MAX_DEPTH)), format="json")

    assert fits.status_code == 201  # the body itself is the first level
    assert too_deep.status_code == 400
    ((field, messages),) = too_deep.json()["fields"].items()
    assert field == "metadata" + ".a" * (MAX_DEPTH - 1) and "100 levels" in messages[0]
    assert Output.objects.for_tenant(tenant).count() == 1


def test_one_bad_number_in_a_batch_refuses_the_body_and_stores_nothing(service, tenant):
    items = [output_payload(n) for n in range(5)]
    items[3]["trace"] = [{"type": "llm", "tokens": 2**60}]

    response = service.post("/api/v1/outputs/batch", {"items": items}, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["items.3.trace.0.tokens"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_every_body_is_checked_not_only_outputs(admin, tenant):
    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["rules"] = [{"tier": "high", "match": {"metadata": [{"key": "n", "equals": 1e20}]}}]

    response = admin.put("/api/v1/policy", policy, format="json")

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["rules.0.match.metadata.0.equals"]
    assert Policy.objects.for_tenant(tenant).get().version == 1


def test_the_check_finds_problems_wherever_they_are():
    assert json_value_problem({"a": [1, 2.5, "x", None, True, {"b": MAX_SAFE_INTEGER}]}) is None
    assert json_value_problem({"a": [1, {"b": float("nan")}]}) == (
        "a.1.b",
        "not a finite number; JSON has no NaN or Infinity",
    )
    assert json_value_problem([0, [1, 2**70]])[0] == "1.1"
    assert json_value_problem(2**60)[0] == "body"
    assert json_value_problem(nested(MAX_DEPTH)) is None
    assert json_value_problem(nested(MAX_DEPTH + 1))[0] == ".".join(["a"] * MAX_DEPTH)


# Services: the admin parses JSON with Python's json, which reads NaN and any integer -------


def test_configuration_services_refuse_what_could_not_be_read_back(tenant):
    from hitl.errors import DomainValidationError
    from policies.services import judge_create, policy_publish, rubric_publish

    policy = copy.deepcopy(DEFAULT_POLICY)
    policy["rules"] = [{"tier": "high", "match": {"metadata": [{"key": "n", "in": [1, 10**20]}]}}]
    with pytest.raises(DomainValidationError) as refused:
        policy_publish(tenant=tenant, document=policy)
    assert list(refused.value.fields) == ["rules.0.match.metadata.0.in.1"]

    rubric = {"name": "r", "criteria": [{"key": "k", "label": "K", "kind": "graded", "min": 10**20, "max": 10**20 + 4}]}
    with pytest.raises(DomainValidationError) as refused:
        rubric_publish(tenant=tenant, document=rubric)
    assert list(refused.value.fields) == ["criteria.0.min"]

    judge = {"name": "long", "kind": "length", "params": {"max_chars": json.loads("Infinity")}}
    with pytest.raises(DomainValidationError) as refused:
        judge_create(tenant=tenant, data=judge)
    assert list(refused.value.fields) == ["params.max_chars"]
    assert not Rubric.objects.for_tenant(tenant).exists()


# The read side: rows stored before the edge refused them --------------------------------


def test_an_output_stored_with_a_huge_number_does_not_break_reading_the_tenants_outputs(service, tenant):
    created = service.post("/api/v1/outputs", output_payload(1), format="json").json()
    service.post("/api/v1/outputs", output_payload(2), format="json")
    # As an older release stored {"n": 1e20} on PostgreSQL: jsonb gives it back as an integer.
    Output.objects.for_tenant(tenant).filter(pk=created["id"]).update(metadata={"n": 10**20, "m": -(10**400)})

    listed = service.get("/api/v1/outputs")
    detail = service.get(f"/api/v1/outputs/{created['id']}")

    assert listed.status_code == 200 and len(listed.json()["results"]) == 2
    assert detail.status_code == 200
    assert detail.json()["metadata"]["n"] == 1e20  # as the client sent it
    assert detail.json()["metadata"]["m"] == str(-(10**400))  # no double holds it: its digits


def test_a_task_whose_output_holds_huge_numbers_is_claimed_and_shown(service, tenant):
    from policies.services import policy_publish
    from tests.reviews.conftest import claim, reviewer

    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "default_tier": "critical", "rules": []})
    created = service.post("/api/v1/outputs", output_payload(1), format="json").json()
    Output.objects.for_tenant(tenant).filter(pk=created["id"]).update(metadata={"n": 10**20, "m": -(10**400)})

    response = claim(reviewer(tenant, 3, "rita"))

    assert response.status_code == 200, response.content
    assert response.json()["output"]["metadata"] == {"n": 1e20, "m": str(-(10**400))}


def test_a_policy_version_stored_with_a_huge_number_does_not_break_the_policy_or_its_history(admin, tenant):
    policy = Policy.objects.for_tenant(tenant).get()
    document = {**policy.document, "rules": [{"tier": "high", "match": {"metadata": [{"key": "n", "equals": 10**20}]}}]}
    Policy.objects.for_tenant(tenant).filter(pk=policy.pk).update(document=document)
    policy.history.filter(version=1).update(document=document)

    current = admin.get("/api/v1/policy")
    history = admin.get("/api/v1/policy/history")

    assert current.status_code == 200 and history.status_code == 200
    assert history.json()["results"][0]["rules"][0]["match"]["metadata"][0]["equals"] == 1e20


def test_the_renderer_writes_what_orjson_alone_refuses():
    deep = nested(300)

    assert json.loads(dumps({"n": 10**20, "ok": 2**64 - 1})) == {"n": 1e20, "ok": 2**64 - 1}
    written = json.loads(dumps({"deep": deep}))
    level, depth = written["deep"], 1
    while isinstance(level, dict):
        level, depth = level.get("a"), depth + 1
    assert depth > 150 and json.loads(level) == nested(300 - depth + 1)  # the deepest part as JSON text


# NUL characters in a path ------------------------------------------------------------


def test_a_nul_character_in_a_path_is_404_not_a_database_error(admin):
    for path in ("/api/v1/rubrics/%00", "/api/v1/rubrics/a%00b"):
        response = admin.get(path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
