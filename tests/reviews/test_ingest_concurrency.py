"""Concurrent submissions of the same external id on PostgreSQL: one row, one answer."""

import pytest

from reviews.models import Output
from tests.concurrency import race
from tests.conftest import make_client
from tests.factories import output_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_same_output_submitted_concurrently_is_stored_once(tenant):
    client = make_client(tenant, "service")

    responses = race(client.raw_key, "post", "/api/v1/outputs", [output_payload(1)] * 8)

    assert sorted(response.status_code for response in responses) == [200] * 7 + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert Output.objects.for_tenant(tenant).count() == 1


def test_overlapping_batches_concurrently_store_each_output_once(tenant):
    client = make_client(tenant, "service")
    bodies = [{"items": [output_payload(n) for n in range(start, start + 50)]} for start in (0, 25, 10, 40)]

    responses = race(client.raw_key, "post", "/api/v1/outputs/batch", bodies)

    assert all(response.status_code == 200 for response in responses)
    ids_by_external = {}
    for response in responses:
        for result in response.json()["results"]:
            assert result["outcome"] in ("created", "existing")
            ids_by_external.setdefault(result["output"]["external_id"], set()).add(result["output"]["id"])
    assert all(len(ids) == 1 for ids in ids_by_external.values())
    assert Output.objects.for_tenant(tenant).count() == 90
