"""POST /api/v1/outputs/batch: a result per item, one transaction, fixed query count."""

import pytest

from reviews.models import Output
from tests.factories import output_payload

URL = "/api/v1/outputs/batch"


def test_batch_stores_valid_items_and_reports_each(service_client, tenant):
    service_client.post("/api/v1/outputs", output_payload(1), format="json")
    items = [
        output_payload(1),  # already stored: existing
        output_payload(2),  # new
        output_payload(3, confidence=7),  # invalid
        output_payload(1, output="changed"),  # conflict with the stored one
        output_payload(4),
    ]

    response = service_client.post(URL, {"items": items}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["outcome"] for r in body["results"]] == ["existing", "created", "invalid", "conflict", "created"]
    assert [r["status_code"] for r in body["results"]] == [200, 201, 400, 409, 201]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert (body["created"], body["existing"], body["conflicts"], body["invalid"]) == (2, 1, 1, 1)
    assert body["results"][2]["error"]["fields"] == {"confidence": ["Input should be less than or equal to 1"]}
    assert body["results"][3]["error"]["code"] == "conflict"
    stored = set(Output.objects.for_tenant(tenant).values_list("external_id", flat=True))
    assert stored == {"ext-1", "ext-2", "ext-4"}
    assert Output.objects.for_tenant(tenant).get(external_id="ext-1").output == "Answer 1."


def test_batch_results_match_single_reads(service_client):
    response = service_client.post(URL, {"items": [output_payload(1), output_payload(2)]}, format="json")
    for result in response.json()["results"]:
        single = service_client.get(f"/api/v1/outputs/{result['output']['id']}").json()
        assert single["external_id"] == result["output"]["external_id"]
        assert single["status"] == result["output"]["status"]


def test_repeat_within_one_batch(service_client, tenant):
    items = [output_payload(1), output_payload(1), output_payload(1, output="different")]

    body = service_client.post(URL, {"items": items}, format="json").json()

    assert [r["outcome"] for r in body["results"]] == ["created", "existing", "conflict"]
    assert body["results"][0]["output"]["id"] == body["results"][1]["output"]["id"]
    assert Output.objects.for_tenant(tenant).count() == 1


def test_whole_batch_repeated_is_all_existing(service_client, tenant):
    items = [output_payload(n) for n in range(5)]
    first = service_client.post(URL, {"items": items}, format="json").json()
    second = service_client.post(URL, {"items": items}, format="json").json()

    assert second["existing"] == 5
    assert [r["output"]["id"] for r in first["results"]] == [r["output"]["id"] for r in second["results"]]
    assert Output.objects.for_tenant(tenant).count() == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "nope"}, "items"),
        ({"items": [output_payload(1)], "extra": True}, "extra"),
        ([output_payload(1)], "body"),
    ],
)
def test_bad_envelope_is_400_naming_the_field(service_client, tenant, body, field):
    response = service_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_more_than_1000_items_is_400_and_stores_nothing(service_client, tenant):
    items = [output_payload(n) for n in range(1001)]

    response = service_client.post(URL, {"items": items}, format="json")

    assert response.status_code == 400
    assert "items" in response.json()["fields"]
    assert "1000" in response.json()["message"]
    assert not Output.objects.for_tenant(tenant).exists()


def test_item_that_is_not_an_object_is_reported_alone(service_client, tenant):
    body = service_client.post(URL, {"items": [output_payload(1), "oops"]}, format="json").json()

    assert [r["outcome"] for r in body["results"]] == ["created", "invalid"]
    assert body["results"][1]["error"]["fields"] == {"body": ["Must be a JSON object."]}


@pytest.mark.parametrize("size", [10, 1000])
def test_batch_query_count_does_not_grow_with_size(service_client, assert_work_queries, size, predictable_policy):
    service_client.post("/api/v1/outputs", output_payload(-1), format="json")  # settle last_used_at
    items = [output_payload(n, application="held" if n % 2 else "quiet") for n in range(size)]

    from tests.conftest import AUDIT_APPEND_QUERIES

    # key lookup, one INSERT of outputs, one INSERT of the sampled ones' tasks, the audit event
    with assert_work_queries(3 + AUDIT_APPEND_QUERIES):
        response = service_client.post(URL, {"items": items}, format="json")
    assert response.json()["created"] == size
    assert sum(result["output"]["review_required"] for result in response.json()["results"]) == size // 2

    with assert_work_queries(3):  # a full repeat: the INSERT skips all, one read of the stored rows
        response = service_client.post(URL, {"items": items}, format="json")
    assert response.json()["existing"] == size
