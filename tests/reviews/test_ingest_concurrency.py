"""Concurrent submissions of the same external id on PostgreSQL: one row, one answer."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from reviews.models import Output
from tests.conftest import make_client
from tests.factories import output_payload

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(raw_key: str, bodies: list, url: str) -> list:
    barrier = threading.Barrier(len(bodies))
    responses: list = [None] * len(bodies)

    def worker(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        barrier.wait()
        try:
            responses[index] = client.post(url, bodies[index], format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_same_output_submitted_concurrently_is_stored_once(tenant):
    client = make_client(tenant, "service")

    responses = _race(client.raw_key, [output_payload(1)] * 8, "/api/v1/outputs")

    assert sorted(response.status_code for response in responses) == [200] * 7 + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert Output.objects.for_tenant(tenant).count() == 1


def test_overlapping_batches_concurrently_store_each_output_once(tenant):
    client = make_client(tenant, "service")
    bodies = [{"items": [output_payload(n) for n in range(start, start + 50)]} for start in (0, 25, 10, 40)]

    responses = _race(client.raw_key, bodies, "/api/v1/outputs/batch")

    assert all(response.status_code == 200 for response in responses)
    ids_by_external = {}
    for response in responses:
        for result in response.json()["results"]:
            assert result["outcome"] in ("created", "existing")
            ids_by_external.setdefault(result["output"]["external_id"], set()).add(result["output"]["id"])
    assert all(len(ids) == 1 for ids in ids_by_external.values())
    assert Output.objects.for_tenant(tenant).count() == 90
