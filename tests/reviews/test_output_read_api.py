"""GET /api/v1/outputs/{id} and GET /api/v1/outputs."""

from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone

from reviews.models import Output
from tests.factories import output_payload


def _submit_many(client, numbers, **overrides):
    items = [output_payload(n, **overrides) for n in numbers]
    return client.post("/api/v1/outputs/batch", {"items": items}, format="json").json()["results"]


def test_detail_returns_the_whole_output(service_client):
    created = service_client.post("/api/v1/outputs", output_payload(1), format="json").json()

    response = service_client.get(f"/api/v1/outputs/{created['id']}")

    assert response.status_code == 200
    body = response.json()
    for key, value in output_payload(1).items():
        assert body[key] == value
    assert body["id"] == created["id"]
    for key in ("status", "risk_tier", "review_required", "delivery", "policy_version"):
        assert body[key] == created[key]
    assert "tier medium" in body["decision_reason"]


def test_detail_of_unknown_or_malformed_id_is_json_404(service_client):
    assert service_client.get("/api/v1/outputs/01a1fe29-bf80-7589-ae5d-83750e6fd6f1").json()["code"] == "not_found"
    response = service_client.get("/api/v1/outputs/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_list_is_newest_first_and_paginates_by_cursor(service_client):
    for number in range(5):
        service_client.post("/api/v1/outputs", output_payload(number), format="json")

    seen = []
    url = "/api/v1/outputs?page_size=2"
    while url:
        page = service_client.get(url).json()
        assert len(page["results"]) <= 2
        seen.extend(item["external_id"] for item in page["results"])
        url = page["next"]

    assert seen == [f"ext-{n}" for n in reversed(range(5))]
    assert "trace" not in page["results"][0]


def test_list_filters_by_application_status_and_time(service_client, tenant):
    _submit_many(service_client, range(3))
    _submit_many(service_client, range(10, 12), application="legal")
    hour_ago = timezone.now() - timedelta(hours=1)
    Output.unscoped.filter(tenant=tenant, external_id__in=["ext-0", "ext-10"]).update(received_at=hour_ago)

    legal = service_client.get("/api/v1/outputs", {"application": "legal"}).json()["results"]
    assert [item["external_id"] for item in legal] == ["ext-11", "ext-10"]

    recent = service_client.get("/api/v1/outputs", {"received_after": (hour_ago + timedelta(minutes=1)).isoformat()})
    assert sorted(item["external_id"] for item in recent.json()["results"]) == ["ext-1", "ext-11", "ext-2"]
    older = service_client.get(
        "/api/v1/outputs",
        {"received_before": (hour_ago + timedelta(minutes=1)).isoformat(), "application": "support-bot"},
    )
    assert [item["external_id"] for item in older.json()["results"]] == ["ext-0"]
    by_status = dict(
        Output.objects.for_tenant(tenant).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    for status_name, count in by_status.items():
        assert len(service_client.get("/api/v1/outputs", {"status": status_name}).json()["results"]) == count
    assert sum(by_status.values()) == 5
    assert service_client.get("/api/v1/outputs", {"status": "approved"}).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "bogus"}, "status"), ({"received_after": "yesterday"}, "received_after")],
)
def test_list_with_bad_filter_is_400_naming_it(service_client, params, field):
    response = service_client.get("/api/v1/outputs", params)

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_list_runs_two_queries_whatever_the_page_size(service_client, assert_work_queries):
    _submit_many(service_client, range(30))
    service_client.get("/api/v1/outputs")
    with assert_work_queries(2):  # key lookup, page
        assert len(service_client.get("/api/v1/outputs?page_size=25").json()["results"]) == 25
