"""Concurrent configuration writes on PostgreSQL: no 500s, no lost versions."""

import pytest

from policies.models import Application, Rubric
from tests.concurrency import race
from tests.conftest import make_client

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_first_versions_of_a_rubric_all_land(tenant):
    admin = make_client(tenant, "admin")
    body = {"name": "fresh", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}

    responses = race(admin.raw_key, "post", "/api/v1/rubrics", [body] * 6)

    assert sorted(response.status_code for response in responses) == [200] * 5 + [201]
    assert sorted(response.json()["version"] for response in responses) == [1, 2, 3, 4, 5, 6]
    assert Rubric.objects.for_tenant(tenant).get().version == 6


def test_concurrent_stop_buttons_on_a_new_application_leave_one_row(tenant):
    admin = make_client(tenant, "admin")

    responses = race(admin.raw_key, "put", "/api/v1/applications/brand-new/override", [{"mode": "block"}] * 6)

    assert [response.status_code for response in responses] == [200] * 6
    assert Application.objects.for_tenant(tenant).get(name="brand-new").override == "block"
