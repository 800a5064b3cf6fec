"""The same validation and history in the Django admin as through the API."""

import json

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.models import Application, Judge, Policy, Rubric
from tenants.services import membership_create
from tests.factories import UserFactory


@pytest.fixture
def staff_admin(tenant):
    from django.contrib.auth.models import Permission

    person = UserFactory(is_staff=True)
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="policies", codename__regex=r"^(view|change|add)_")
    )
    return person


def test_policy_edit_in_admin_publishes_a_version_with_reason(client, staff_admin, tenant):
    client.force_login(staff_admin)
    policy = Policy.objects.for_tenant(tenant).get()
    document = {**DEFAULT_POLICY, "default_tier": "low"}

    response = client.post(
        f"/admin/policies/policy/{policy.pk}/change/", {"document": json.dumps(document), "reason": "quieter"}
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert (policy.version, policy.document["default_tier"]) == (2, "low")
    latest = policy.history.order_by("-history_date").first()
    assert (latest.history_user, latest.history_change_reason) == (staff_admin, "quieter")
    assert client.get(f"/admin/policies/policy/{policy.pk}/history/").status_code == 200


def test_invalid_policy_in_admin_shows_which_rule_is_wrong(client, staff_admin, tenant):
    client.force_login(staff_admin)
    policy = Policy.objects.for_tenant(tenant).get()
    document = {**DEFAULT_POLICY, "rules": [{"name": "typo", "tier": "hgh", "match": {"model": "m"}}]}

    response = client.post(f"/admin/policies/policy/{policy.pk}/change/", {"document": json.dumps(document)})

    assert response.status_code == 200
    assert "rule 1 (typo): tier &#x27;hgh&#x27;" in response.content.decode()
    policy.refresh_from_db()
    assert policy.version == 1


def test_stop_button_admin_action(client, staff_admin, tenant, other_tenant):
    from policies.services import application_override_set

    application_override_set(tenant=tenant, name="support-bot", mode="none")
    application_override_set(tenant=other_tenant, name="support-bot", mode="none")
    client.force_login(staff_admin)
    mine = Application.objects.for_tenant(tenant).get()

    response = client.post(
        "/admin/policies/application/", {"action": "block", "_selected_action": [mine.pk]}, follow=True
    )

    assert response.status_code == 200
    assert Application.objects.for_tenant(tenant).get().override == "block"
    assert Application.objects.for_tenant(other_tenant).get().override == "none"
    assert "support-bot" in client.get("/admin/policies/application/").content.decode()


def test_rubric_admin_validates_criteria(client, staff_admin, tenant):
    client.force_login(staff_admin)
    bad = [{"key": "g", "label": "G", "kind": "graded", "min": 3, "max": 1}]

    response = client.post(
        "/admin/policies/rubric/add/",
        {"tenant": tenant.pk, "name": "quality", "description": "", "criteria": json.dumps(bad)},
    )

    assert response.status_code == 200
    assert "min &lt; max" in response.content.decode()
    assert not Rubric.objects.for_tenant(tenant).exists()
    good = [{"key": "ok", "label": "OK", "kind": "binary"}]
    response = client.post(
        "/admin/policies/rubric/add/",
        {"tenant": tenant.pk, "name": "quality", "description": "", "criteria": json.dumps(good)},
    )
    assert response.status_code == 302
    assert Rubric.objects.for_tenant(tenant).get().version == 1


def test_rubric_admin_publishes_a_version_that_requires_recertification(client, staff_admin, tenant):
    from datetime import timedelta

    from django.utils import timezone

    from policies.services import policy_publish, rubric_publish
    from reviews.models import Certification, CertificationStatus, Queue

    criteria = [{"key": "ok", "label": "OK", "kind": "binary"}]
    rubric, _ = rubric_publish(tenant=tenant, document={"name": "quality", "criteria": criteria})
    tiers = [{**tier, "rubric": "quality"} for tier in DEFAULT_POLICY["tiers"]]
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers})
    now = timezone.now()
    certification = Certification.objects.for_tenant(tenant).create(
        user=UserFactory(),
        queue=Queue.objects.for_tenant(tenant).get(name="default"),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=30),
    )
    client.force_login(staff_admin)
    assert "require_recertification" not in client.get("/admin/policies/rubric/add/").content.decode()
    assert "require_recertification" in client.get(f"/admin/policies/rubric/{rubric.pk}/change/").content.decode()

    response = client.post(
        f"/admin/policies/rubric/{rubric.pk}/change/",
        {"description": "stricter", "criteria": json.dumps(criteria), "require_recertification": "on"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Rubric.objects.for_tenant(tenant).get().version == 2
    certification.refresh_from_db()
    assert certification.status == CertificationStatus.EXPIRED
    assert "rubric quality version 2" in certification.status_reason


def _judge_form(tenant, **changes) -> dict:
    form = {
        "tenant": tenant.pk,
        "name": "helpful",
        "kind": "llm",
        "description": "",
        "applications": "[]",
        "tiers": "[]",
        "params": json.dumps(
            {"base_url": "https://llm.example.com/v1", "model": "m", "prompt_template": "Judge: {{output}}"}
        ),
        "on_fail": "force_review",
        "raise_to": "",
        "unsure_low": "0.4",
        "unsure_high": "0.6",
        "is_active": "on",
        "new_api_key": "sk-admin-secret",
        "reason": "first judge",
    }
    form.update(changes)
    return form


def test_a_judge_is_created_and_edited_in_the_admin_through_the_service(client, staff_admin, tenant):
    client.force_login(staff_admin)
    response = client.post("/admin/policies/judge/add/", _judge_form(tenant))
    assert response.status_code == 302, response.content.decode()[:3000]
    judge = Judge.objects.for_tenant(tenant).get()
    assert (judge.version, judge.api_key, judge.params["timeout_seconds"]) == (1, "sk-admin-secret", 30.0)

    page = client.get(f"/admin/policies/judge/{judge.pk}/change/").content.decode()
    assert "sk-admin-secret" not in page and "stored (never shown)" in page
    edit = _judge_form(tenant, new_api_key="", description="now described")
    edit.pop("tenant"), edit.pop("kind")  # fixed once created
    response = client.post(f"/admin/policies/judge/{judge.pk}/change/", edit)
    assert response.status_code == 302, response.content.decode()[:3000]
    judge.refresh_from_db()
    assert (judge.version, judge.description, judge.api_key) == (2, "now described", "sk-admin-secret")
    history = client.get(f"/admin/policies/judge/{judge.pk}/history/").content.decode()
    assert "sk-admin-secret" not in history


def test_the_admin_refuses_a_bad_judge_naming_the_field(client, staff_admin, tenant):
    client.force_login(staff_admin)
    response = client.post(
        "/admin/policies/judge/add/", _judge_form(tenant, params=json.dumps({"model": "m"}), tiers='["nope"]')
    )
    assert response.status_code == 200  # the form again, with errors
    text = response.content.decode()
    assert "base_url" in text and "nope" in text
    assert not Judge.objects.for_tenant(tenant).exists()
