"""POST /api/v1/outputs: storing, idempotency, and every way a body can be wrong."""

import pytest
from django.test import override_settings

from reviews.models import Output
from tests.factories import output_payload

URL = "/api/v1/outputs"


@pytest.fixture
def submit(service_client):
    def _submit(payload, **kwargs):
        return service_client.post(URL, payload, format="json", **kwargs)

    return _submit


def test_submit_stores_everything_and_answers_201(submit, tenant):
    payload = output_payload(1)
    response = submit(payload)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["external_id"] == "ext-1"
    # The default policy: no rule matches confidence 0.87, so the default tier, medium (parallel).
    assert body["risk_tier"] == "medium"
    assert body["policy_version"] == 1
    assert body["delivery"] == "deliver"
    assert body["status"] == ("pending_review" if body["review_required"] else "auto_approved")
    stored = Output.objects.for_tenant(tenant).get(pk=body["id"])
    assert stored.input == payload["input"]
    assert stored.output == payload["output"]
    assert stored.trace == payload["trace"]
    assert stored.metadata == payload["metadata"]
    assert stored.model == "gpt-4o-mini"
    assert stored.confidence == pytest.approx(0.87)
    assert stored.received_at is not None
    assert stored.decision_reason.startswith("no rule matched: default tier; tier medium, rate 0.25, drawn ")


def test_submit_minimal_body_gets_defaults(submit, tenant):
    response = submit({"external_id": "m", "application": "app", "input": "hi", "output": ""})

    assert response.status_code == 201
    stored = Output.objects.for_tenant(tenant).get(external_id="m")
    assert (stored.trace, stored.metadata, stored.model, stored.confidence) == ([], {}, "", None)


def test_same_body_again_returns_the_same_record_with_200(submit, tenant):
    first = submit(output_payload(1))
    # Key order must not matter: the idempotency hash is over a canonical form.
    reordered = dict(reversed(list(output_payload(1).items())))
    second = submit(reordered)

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == first.json()
    assert Output.objects.for_tenant(tenant).count() == 1


def test_different_body_under_same_external_id_is_409_and_changes_nothing(submit, tenant):
    submit(output_payload(1))
    response = submit(output_payload(1, output="Something else."))

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "external_id" in response.json()["fields"]
    assert Output.objects.for_tenant(tenant).get().output == "Answer 1."


def test_same_external_id_in_two_tenants_are_two_records(submit, other_service_client, tenant, other_tenant):
    mine = submit(output_payload(1))
    theirs = other_service_client.post(URL, output_payload(1, output="theirs"), format="json")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"external_id": None}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 256}, "external_id"),
        ({"application": 5}, "application"),
        ({"application": "has spaces"}, "application"),
        ({"output": ["not", "a", "string"]}, "output"),
        ({"trace": {"not": "a list"}}, "trace"),
        ({"trace": ["not an object"]}, "trace.0"),
        ({"metadata": []}, "metadata"),
        ({"confidence": "0.5"}, "confidence"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"model": 7}, "model"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_wrong_field_is_400_naming_it_and_stores_nothing(submit, tenant, change, field):
    response = submit(output_payload(1, **change))

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert field in body["fields"], body
    assert field in body["message"]
    assert not Output.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize("missing", ["external_id", "application", "input", "output"])
def test_missing_required_field_is_400_naming_it(submit, tenant, missing):
    payload = output_payload(1)
    del payload[missing]

    response = submit(payload)

    assert response.status_code == 400
    assert response.json()["fields"][missing] == ["Field required"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_malformed_json_is_400(service_client, tenant):
    response = service_client.post(URL, data=b'{"external_id": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert "Malformed JSON" in response.json()["message"]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42"])
def test_body_that_is_not_an_object_is_400(service_client, body):
    response = service_client.post(URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": ["Must be a JSON object."]}


def test_empty_body_names_the_required_fields(service_client):
    response = service_client.post(URL, data=b"", content_type="application/json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"external_id", "application", "input", "output"}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_body_is_400_and_stores_nothing(submit, tenant):
    response = submit(output_payload(1, output="x" * 2000))

    assert response.status_code == 400
    assert response.json()["code"] == "request_too_large"
    assert "1000 bytes" in response.json()["message"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_non_json_content_type_is_415(service_client):
    response = service_client.post(URL, data="external_id=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_single_submit_runs_a_small_fixed_number_of_queries(submit, assert_work_queries, predictable_policy):
    from tests.conftest import AUDIT_APPEND_QUERIES as audit

    submit(output_payload(0))  # the key's first use records last_used_at once
    with assert_work_queries(2 + audit):  # key lookup, INSERT ... ON CONFLICT DO NOTHING, the audit event
        response = submit(output_payload(2))
    assert (response.status_code, response.json()["review_required"]) == (201, False)
    with assert_work_queries(3 + audit):  # ... and one INSERT of its review tasks (sampled)
        response = submit(output_payload(1, application="held"))
    assert (response.status_code, response.json()["review_required"]) == (201, True)
    with assert_work_queries(3):  # key lookup, the skipped INSERT, read of the stored row
        assert submit(output_payload(1, application="held")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_output_its_tasks_and_its_audit_event_commit_together(service_client, predictable_policy):
    from django.db import connection

    inserts = []

    def record(execute, sql, params, many, context):
        if sql.startswith("INSERT"):
            inserts.append((sql.split()[2].strip('"'), connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        sampled = service_client.post(URL, output_payload(1, application="held"), format="json")
        unsampled = service_client.post(URL, output_payload(2), format="json")
    inserts = [insert for insert in inserts if not insert[0].startswith("tenants_audit")]  # the audit append
    assert (sampled.status_code, sampled.json()["review_required"]) == (201, True)
    assert (unsampled.status_code, unsampled.json()["review_required"]) == (201, False)
    # The output, its review tasks and its audit event in one transaction (PostgreSQL appends
    # the event with a WITH ... INSERT statement); an output alone too, for its audit event.
    assert inserts == [("reviews_output", True), ("reviews_reviewtask", True), ("reviews_output", True)]
