"""What a GET returns can be sent back unchanged; a copy made stale by someone else's change is a 409.

Per resource: the policy (GET/PUT /policy), a judge (GET/PUT /judges/{id}) and a rubric
(GET /rubrics/{name}, POST /rubrics).
"""

import pytest

from policies.models import Judge, Policy, Rubric
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory

RUBRIC = {
    "name": "quality",
    "description": "How good the answer is.",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5, "anchors": {"1": "useless"}},
        {"key": "tone", "label": "Tone", "kind": "categorical", "options": ["ok", "rude"], "required": False},
    ],
}
LLM = {
    "name": "helpful",
    "kind": "llm",
    "params": {"base_url": "https://llm.example.com/v1", "model": "m", "prompt_template": "Judge: {{output}}"},
    "api_key": "sk-secret-123",
    "tiers": ["high"],
    "on_fail": "raise_tier",
    "raise_to": "critical",
}


def _admin(tenant, name: str):
    person = UserFactory(username=name)
    membership_create(tenant=tenant, user=person, role="admin")
    return make_client(tenant, "admin", user=person)


@pytest.fixture
def ann(tenant):
    return _admin(tenant, "ann")


@pytest.fixture
def bob(tenant):
    return _admin(tenant, "bob")


def _stale(response, field: str = "version"):
    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "stale_version"
    assert field in body["fields"]
    return body


# The policy ---------------------------------------------------------------------


def test_policy_get_is_the_current_version_with_who_and_why(ann):
    ann.put("/api/v1/policy", {**ann.get("/api/v1/policy").json(), "reason": "first edit"}, format="json")

    current = ann.get("/api/v1/policy").json()
    newest = ann.get("/api/v1/policy/history").json()["results"][0]

    assert current == newest
    assert (current["version"], current["changed_by"], current["reason"]) == (2, "ann", "first edit")
    assert "updated_at" not in current


def test_policy_sent_back_unchanged_publishes_the_same_document_as_a_new_version(ann, tenant):
    read = ann.get("/api/v1/policy").json()

    response = ann.put("/api/v1/policy", read, format="json")

    assert response.status_code == 200, response.json()
    published = response.json()
    assert published["version"] == read["version"] + 1
    document_keys = ("default_tier", "tiers", "rules")
    assert {key: published[key] for key in document_keys} == {key: read[key] for key in document_keys}
    assert Policy.objects.for_tenant(tenant).get().version == read["version"] + 1


def test_policy_edited_from_a_stale_copy_is_409_and_publishes_nothing(ann, bob, tenant):
    anns_copy = ann.get("/api/v1/policy").json()
    bobs_copy = bob.get("/api/v1/policy").json()
    assert bob.put("/api/v1/policy", {**bobs_copy, "default_tier": "high"}, format="json").status_code == 200

    response = ann.put("/api/v1/policy", {**anns_copy, "default_tier": "low"}, format="json")

    body = _stale(response)
    assert f"version {anns_copy['version']}" in body["message"]
    assert f"version {anns_copy['version'] + 1}" in body["message"]
    policy = Policy.objects.for_tenant(tenant).get()
    assert (policy.version, policy.document["default_tier"]) == (anns_copy["version"] + 1, "high")


@pytest.mark.parametrize(("field", "value"), [("changed_by", "mallory"), ("changed_at", "2001-01-01T00:00:00Z")])
def test_policy_with_an_edited_read_only_field_is_409(ann, tenant, field, value):
    read = ann.get("/api/v1/policy").json()

    _stale(ann.put("/api/v1/policy", {**read, field: value}, format="json"), field)
    assert Policy.objects.for_tenant(tenant).get().version == read["version"]


def test_policy_without_read_only_fields_publishes_whatever_the_version(ann):
    read = ann.get("/api/v1/policy").json()
    ann.put("/api/v1/policy", read, format="json")
    document = {key: read[key] for key in ("default_tier", "tiers", "rules")}

    assert ann.put("/api/v1/policy", document, format="json").status_code == 200


def test_policy_reason_of_500_characters_is_kept_whole(ann):
    reason = "r" * 500
    response = ann.put("/api/v1/policy", {**ann.get("/api/v1/policy").json(), "reason": reason}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["reason"] == reason
    assert ann.get("/api/v1/policy/history").json()["results"][0]["reason"] == reason


def test_override_reason_of_500_characters_is_kept_whole(ann, tenant):
    from policies.models import Application

    response = ann.put("/api/v1/applications/bot/override", {"mode": "block", "reason": "x" * 500}, format="json")

    assert response.status_code == 200, response.json()
    application = Application.objects.for_tenant(tenant).get(name="bot")
    assert application.history.first().history_change_reason == "x" * 500


# Judges ----------------------------------------------------------------------------


def test_judge_sent_back_unchanged_is_a_new_version_keeping_its_key(ann, tenant):
    judge_id = ann.post("/api/v1/judges", LLM, format="json").json()["id"]
    read = ann.get(f"/api/v1/judges/{judge_id}").json()

    response = ann.put(f"/api/v1/judges/{judge_id}", read, format="json")

    assert response.status_code == 200, response.json()
    updated = response.json()
    assert updated["version"] == read["version"] + 1
    unchanged = {key: value for key, value in read.items() if key not in ("version", "updated_at")}
    assert {key: updated[key] for key in unchanged} == unchanged
    assert Judge.objects.for_tenant(tenant).get(pk=judge_id).api_key == "sk-secret-123"


def test_judge_edited_from_a_stale_copy_is_409_and_changes_nothing(ann, bob, tenant):
    judge_id = ann.post("/api/v1/judges", LLM, format="json").json()["id"]
    anns_copy = ann.get(f"/api/v1/judges/{judge_id}").json()
    bobs_copy = bob.get(f"/api/v1/judges/{judge_id}").json()
    assert bob.put(f"/api/v1/judges/{judge_id}", {**bobs_copy, "is_active": False}, format="json").status_code == 200

    response = ann.put(f"/api/v1/judges/{judge_id}", {**anns_copy, "description": "mine"}, format="json")

    _stale(response)
    judge = Judge.objects.for_tenant(tenant).get(pk=judge_id)
    assert (judge.version, judge.is_active, judge.description) == (2, False, "")


@pytest.mark.parametrize(
    ("field", "value"), [("id", 999_999), ("api_key_set", False), ("updated_at", "2001-01-01T00:00:00Z")]
)
def test_judge_with_an_edited_read_only_field_is_409(ann, tenant, field, value):
    judge_id = ann.post("/api/v1/judges", LLM, format="json").json()["id"]
    read = ann.get(f"/api/v1/judges/{judge_id}").json()

    _stale(ann.put(f"/api/v1/judges/{judge_id}", {**read, field: value}, format="json"), field)
    assert Judge.objects.for_tenant(tenant).get(pk=judge_id).version == 1


def test_judge_read_only_fields_of_the_wrong_type_are_400(ann):
    judge_id = ann.post("/api/v1/judges", LLM, format="json").json()["id"]
    read = ann.get(f"/api/v1/judges/{judge_id}").json()

    response = ann.put(f"/api/v1/judges/{judge_id}", {**read, "version": "1"}, format="json")

    assert response.status_code == 400 and "version" in response.json()["fields"]


# Rubrics ---------------------------------------------------------------------------


def test_rubric_sent_back_unchanged_is_a_new_version(ann, tenant):
    ann.post("/api/v1/rubrics", RUBRIC, format="json")
    read = ann.get("/api/v1/rubrics/quality").json()

    response = ann.post("/api/v1/rubrics", read, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["version"] == read["version"] + 1
    assert response.json()["criteria"] == read["criteria"]
    assert Rubric.objects.for_tenant(tenant).get(name="quality").version == 2


def test_rubric_edited_from_a_stale_copy_is_409_and_changes_nothing(ann, bob, tenant):
    ann.post("/api/v1/rubrics", RUBRIC, format="json")
    anns_copy = ann.get("/api/v1/rubrics/quality").json()
    bobs_copy = bob.get("/api/v1/rubrics/quality").json()
    assert bob.post("/api/v1/rubrics", {**bobs_copy, "description": "bob's"}, format="json").status_code == 200

    _stale(ann.post("/api/v1/rubrics", {**anns_copy, "description": "ann's"}, format="json"))

    rubric = Rubric.objects.for_tenant(tenant).get(name="quality")
    assert (rubric.version, rubric.description) == (2, "bob's")


def test_rubric_copy_of_a_rubric_that_does_not_exist_is_409(ann, tenant):
    response = ann.post("/api/v1/rubrics", {**RUBRIC, "name": "ghost", "version": 3}, format="json")

    _stale(response)
    assert not Rubric.objects.for_tenant(tenant).filter(name="ghost").exists()
