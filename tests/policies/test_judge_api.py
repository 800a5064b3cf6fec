"""Judges as configuration over the API: validated, versioned with history, the key never shown."""

import pytest

from policies.models import Judge
from tests.conftest import make_client

PII = {"name": "no-pii", "kind": "pii", "params": {"detect": ["email", "card"]}, "on_fail": "block"}
LLM = {
    "name": "helpful",
    "kind": "llm",
    "params": {"base_url": "https://llm.example.com/v1", "model": "m", "prompt_template": "Judge: {{output}}"},
    "api_key": "sk-secret-123",
}


@pytest.fixture
def admin(tenant):
    return make_client(tenant, "admin")


def test_create_normalizes_params_and_lists_it(admin):
    response = admin.post("/api/v1/judges", PII, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["kind"], body["on_fail"], body["version"]) == ("no-pii", "pii", "block", 1)
    assert body["params"]["detect"] == ["email", "card"]
    assert (body["unsure_low"], body["unsure_high"], body["is_active"]) == (0.4, 0.6, True)
    listed = admin.get("/api/v1/judges").json()["results"]
    assert [judge["id"] for judge in listed] == [body["id"]]


def test_the_api_key_is_write_only_and_kept_out_of_history(admin, tenant):
    created = admin.post("/api/v1/judges", LLM, format="json")
    assert created.status_code == 201, created.json()
    judge_id = created.json()["id"]
    assert created.json()["api_key_set"] is True
    assert "sk-secret-123" not in created.content.decode()

    update = {**LLM, "description": "now described", "reason": "clarify"}
    update.pop("api_key")  # left out: kept
    updated = admin.put(f"/api/v1/judges/{judge_id}", update, format="json")
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert Judge.objects.for_tenant(tenant).get(pk=judge_id).api_key == "sk-secret-123"

    history = admin.get(f"/api/v1/judges/{judge_id}/history")
    assert [record["version"] for record in history.json()["results"]] == [2, 1]
    assert history.json()["results"][0]["reason"] == "clarify"
    for response in (history, admin.get(f"/api/v1/judges/{judge_id}"), admin.get("/api/v1/judges")):
        assert "sk-secret-123" not in response.content.decode()
    assert not hasattr(Judge.history.model, "api_key") or not Judge.history.filter(api_key="sk-secret-123").exists()

    cleared = admin.put(f"/api/v1/judges/{judge_id}", {**LLM, "api_key": ""}, format="json")
    assert cleared.json()["api_key_set"] is False


# 400: the body breaks the published schema; 422: it fits the schema but breaks a rule the
# schema cannot state (params of the kind, tiers of the policy, one field against another).
@pytest.mark.parametrize(
    ("body", "field", "words", "status"),
    [
        ({"name": "x", "kind": "psychic"}, "kind", "llm", 400),
        ({"name": "x", "kind": "pii", "params": {"detect": ["dna"]}}, "params.detect.0", "'email', 'phone'", 422),
        ({"name": "x", "kind": "length", "params": {}}, "params", "at least", 422),
        ({"name": "x", "kind": "banned", "params": {"patterns": ["(unclosed"]}}, "params.patterns", "unclosed", 422),
        ({"name": "x", "kind": "llm", "params": {"model": "m"}}, "params.base_url", "required", 422),
        ({"name": "x", "kind": "pii", "tiers": ["nope"]}, "tiers.0", "nope", 422),
        ({"name": "x", "kind": "pii", "on_fail": "raise_tier", "raise_to": "nope"}, "raise_to", "nope", 422),
        ({"name": "x", "kind": "pii", "raise_to": "high"}, "body", "raise_tier", 422),
        ({"name": "x", "kind": "pii", "unsure_low": 0.8, "unsure_high": 0.2}, "body", "unsure_low", 422),
        ({"name": "x", "kind": "pii", "api_key": "k"}, "api_key", "LLM", 422),
        ({"name": "Bad Name", "kind": "pii"}, "name", "pattern", 400),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(admin, tenant, body, field, words, status):
    response = admin.post("/api/v1/judges", body, format="json")

    assert response.status_code == status, response.json()
    error = response.json()
    assert error["code"] == "validation_error"
    matching = [key for key in error["fields"] if key.startswith(field)]
    assert matching, error
    assert words.lower() in str(error).lower()
    assert not Judge.objects.for_tenant(tenant).exists()


def test_names_are_unique_per_tenant_and_kinds_fixed(admin, tenant, other_tenant):
    first = admin.post("/api/v1/judges", PII, format="json").json()
    again = admin.post("/api/v1/judges", PII, format="json")
    assert again.status_code == 409 and again.json()["code"] == "judge_exists"
    assert make_client(other_tenant, "admin").post("/api/v1/judges", PII, format="json").status_code == 201

    changed_kind = admin.put(f"/api/v1/judges/{first['id']}", {**PII, "kind": "length"}, format="json")
    assert changed_kind.status_code == 422 and "kind" in changed_kind.json()["fields"]


def test_a_judge_change_applies_from_the_next_request(admin, tenant):
    token = tenant.config_token
    admin.post("/api/v1/judges", PII, format="json")
    tenant.refresh_from_db()
    assert tenant.config_token != token


def test_other_tenants_see_404_for_a_judge(admin, other_tenant):
    judge_id = admin.post("/api/v1/judges", PII, format="json").json()["id"]
    theirs = make_client(other_tenant, "admin")
    for path in (f"/api/v1/judges/{judge_id}", f"/api/v1/judges/{judge_id}/history"):
        assert theirs.get(path).status_code == 404
    assert theirs.put(f"/api/v1/judges/{judge_id}", PII, format="json").status_code == 404
    assert theirs.get("/api/v1/judges").json()["results"] == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"input_cost_per_million": 5e6}, "less than or equal"),
        ({"timeout_seconds": 120, "max_retries": 3}, "fit in a judge task"),
    ],
)
def test_llm_settings_that_could_not_be_stored_or_run_in_time_are_refused(admin, params, words):
    body = {**LLM, "params": {**LLM["params"], **params}}
    response = admin.post("/api/v1/judges", body, format="json")
    assert response.status_code == 422, response.json()  # params follow the kind's schema, not the published one
    assert words in response.json()["message"]


@pytest.mark.parametrize(
    ("base_url", "words"),
    [
        ("http://127.0.0.1:8799\\@1.1.1.1/v1", "must not contain a backslash"),
        ("https://key:secret@llm.example.com/v1", "must not contain user-info"),
        ("http://a..b/v1", "invalid host name"),
    ],
)
def test_a_base_url_the_client_could_read_another_way_is_refused_on_create_and_update(admin, tenant, base_url, words):
    judge_id = admin.post("/api/v1/judges", LLM, format="json").json()["id"]
    body = {**LLM, "params": {**LLM["params"], "base_url": base_url}}

    for response in (
        admin.post("/api/v1/judges", {**body, "name": "another"}, format="json"),
        admin.put(f"/api/v1/judges/{judge_id}", body, format="json"),
    ):
        assert response.status_code == 422, response.json()  # params follow the kind's schema: a rule
        assert words in response.json()["fields"]["params.base_url"][0]
    assert Judge.objects.for_tenant(tenant).get().version == 1
