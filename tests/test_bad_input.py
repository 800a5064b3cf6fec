"""Odd inputs get a clear 4xx in the API's JSON shape, never a 500."""

import base64

import pytest

from tests.factories import output_payload


@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, "admin")


def test_options_is_405_not_a_crash(admin):
    response = admin.options("/api/v1/outputs")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("cursor", [base64.b64encode(b"p=garbage&o=1").decode(), "not base64 at all \u00e9"])
def test_a_cursor_this_api_did_not_make_is_422(admin, cursor):
    response = admin.get("/api/v1/outputs", {"cursor": cursor})
    assert response.status_code == 422
    assert "cursor" in response.json()["fields"]


@pytest.mark.parametrize(
    "query", [{"page_size": "0"}, {"page_size": "501"}, {"page_size": "ten"}, {"application": ""}, {"status": ""}]
)
def test_a_bad_or_empty_list_parameter_is_400_not_ignored(admin, query):
    response = admin.get("/api/v1/outputs", query)
    assert response.status_code == 400
    assert set(query) <= set(response.json()["fields"])


def test_a_time_filter_that_overflows_is_400(admin):
    response = admin.get("/api/v1/outputs", {"received_after": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert "received_after" in response.json()["fields"]


@pytest.mark.parametrize("limit", ["²", "0", "-1", "1001", "abc", "99999"])
def test_history_limit_is_validated(admin, limit):
    response = admin.get("/api/v1/policy/history", {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["fields"]


def test_nul_characters_are_refused_with_a_reason(admin, tenant):
    from reviews.models import Output

    response = admin.post(
        "/api/v1/outputs",
        data=b'{"external_id": "a\\u0000", "application": "x", "input": "", "output": ""}',
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["message"]
    assert not Output.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("name", ["has space", "x" * 101, "-leading"])
def test_override_of_a_malformed_application_name_is_400(admin, name):
    response = admin.put(f"/api/v1/applications/{name}/override", {"mode": "block"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["fields"]


def test_override_errors_name_the_field(admin):
    response = admin.put("/api/v1/applications/bot/override", {"mode": "off"}, format="json")
    assert response.json()["fields"].keys() == {"mode"}


def test_policy_reason_must_be_text(admin):
    from policies.defaults import DEFAULT_POLICY

    response = admin.put("/api/v1/policy", {**DEFAULT_POLICY, "reason": None}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["reason"] == ["Input should be a valid string"]


def test_unicode_everywhere_is_stored_faithfully(admin, tenant):
    payload = output_payload(1, external_id="订单-ü-🙂", output="Grüße 🙂", metadata={"ключ": "значение"})
    response = admin.post("/api/v1/outputs", payload, format="json")
    assert response.status_code == 201
    assert admin.get(f"/api/v1/outputs/{response.json()['id']}").json()["metadata"] == {"ключ": "значение"}
