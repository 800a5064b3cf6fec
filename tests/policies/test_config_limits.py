"""Policy, judge and rubric documents have a documented size limit (docs/policies.md#limits)."""

import copy

import orjson
import pytest
from django.conf import settings

from policies.defaults import DEFAULT_POLICY
from policies.models import Judge, Policy, Rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, "admin")


def policy_of_size(size: int) -> dict:
    """The default policy with rules of `in` lists padding it to about ``size`` bytes serialized."""
    policy = copy.deepcopy(DEFAULT_POLICY)
    values = [f"value-{n:013d}" for n in range(1000)]  # 1000 x 22 bytes a rule
    while len(orjson.dumps(policy)) < size:
        number = len(policy["rules"])
        policy["rules"].append({"tier": "high", "match": {"metadata": [{"key": f"k{number}", "in": values}]}})
    return policy


def test_the_limit_is_the_documented_default():
    assert settings.HITL_MAX_CONFIG_BYTES == 256 * 1024


def test_a_policy_over_the_limit_is_refused_naming_its_largest_field(admin, tenant):
    limit = settings.HITL_MAX_CONFIG_BYTES
    within = policy_of_size(limit - 30_000)
    over = policy_of_size(limit + 1)

    refused = admin.put("/api/v1/policy", over, format="json")

    assert refused.status_code == 400
    assert refused.json()["code"] == "document_too_large"
    assert list(refused.json()["fields"]) == ["rules"]
    assert "over the limit of 256 KB" in refused.json()["message"]
    assert Policy.objects.for_tenant(tenant).get().version == 1
    assert admin.put("/api/v1/policy", within, format="json").status_code == 200


def test_a_judge_over_the_limit_is_refused_naming_params(admin, tenant):
    phrases = [f"phrase number {n:09d} " * 4 for n in range(3500)]  # about 300 KB

    refused = admin.post(
        "/api/v1/judges", {"name": "huge", "kind": "banned", "params": {"phrases": phrases}}, format="json"
    )

    assert (refused.status_code, refused.json()["code"]) == (400, "document_too_large")
    assert list(refused.json()["fields"]) == ["params"]
    assert not Judge.objects.for_tenant(tenant).exists()


def test_a_rubric_over_the_limit_is_refused(admin, tenant):
    anchors = {str(point): "x" * 2700 for point in range(1, 101)}  # 270 KB of what each score means
    criteria = [{"key": "c", "label": "C", "kind": "graded", "min": 1, "max": 100, "anchors": anchors}]

    refused = admin.post("/api/v1/rubrics", {"name": "big", "criteria": criteria}, format="json")

    assert (refused.status_code, refused.json()["code"]) == (400, "document_too_large")
    assert list(refused.json()["fields"]) == ["criteria"]
    assert not Rubric.objects.for_tenant(tenant).exists()


def test_the_admin_refuses_it_in_the_form(client, tenant):
    import json

    from tenants.services import membership_create
    from tests.factories import UserFactory

    person = UserFactory(is_staff=True, is_superuser=True)
    membership_create(tenant=tenant, user=person, role="admin")
    client.force_login(person)
    policy = Policy.objects.for_tenant(tenant).get()

    response = client.post(
        f"/admin/policies/policy/{policy.pk}/change/",
        {"document": json.dumps(policy_of_size(settings.HITL_MAX_CONFIG_BYTES + 1)), "reason": "big"},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "over the limit of 256 KB" in response.content.decode()
    assert Policy.objects.for_tenant(tenant).get().version == 1
