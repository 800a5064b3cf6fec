"""bench/ingest's plain-view baseline: served by the bench's URL conf only, never by the product."""

import orjson
import pytest
from django.test import override_settings

from reviews.models import Output
from tests.factories import TenantFactory, output_payload

PLAIN_URL = "/bench/plain-output"


@pytest.fixture
def plain_tenant(db):
    from bench.ingest import baseline

    baseline._tenant_id.cache_clear()  # the view remembers its tenant per process
    yield TenantFactory(slug=baseline.PLAIN_TENANT_SLUG)
    baseline._tenant_id.cache_clear()


def test_the_product_does_not_serve_the_baseline(client, plain_tenant):
    response = client.post(PLAIN_URL, orjson.dumps(output_payload(1)), content_type="application/json")

    assert response.status_code == 404
    assert not Output.unscoped.exists()


@override_settings(ROOT_URLCONF="bench.ingest.baseline")
def test_under_the_bench_settings_the_baseline_stores_a_row_and_the_api_answers_as_ever(
    client, plain_tenant, service_client, tenant
):
    plain = client.post(PLAIN_URL, orjson.dumps(output_payload(1)), content_type="application/json")
    api = service_client.post("/api/v1/outputs", output_payload(1), format="json")

    assert plain.status_code == 201
    stored = Output.unscoped.get(pk=plain.json()["id"])
    assert (stored.tenant_id, stored.external_id) == (plain_tenant.pk, "ext-1")
    assert api.status_code == 201
    assert Output.objects.for_tenant(tenant).get().pk != stored.pk
