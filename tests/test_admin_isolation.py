"""A staff admin of tenant A can neither see nor change anything of tenant B in the Django admin:
not in lists, filters, choices, change forms or history pages."""

import json

import pytest
from django.contrib.auth.models import Permission

from policies.defaults import DEFAULT_POLICY
from policies.models import Application, Judge, Policy, Rubric
from policies.services import application_override_set, judge_create, rubric_publish
from reviews.models import Queue
from reviews.services.queues import queue_grant
from tenants.models import ApiKey
from tenants.services import api_key_create, membership_create
from tests.factories import UserFactory

RUBRIC = {"name": "rubric-of-b", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}


@pytest.fixture
def staff_of_a(tenant):
    person = UserFactory(is_staff=True, username="staff-a")
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["policies", "tenants", "reviews"])
    )
    return person


@pytest.fixture
def b_objects(other_tenant):
    outsider = UserFactory(username="member-of-b")
    membership_create(tenant=other_tenant, user=outsider, role="admin")
    api_key, _ = api_key_create(tenant=other_tenant, role="admin", name="key-of-b", user=outsider, actor=outsider)
    queue_grant(queue=Queue.objects.for_tenant(other_tenant).get(name="default"), user=outsider, actor=outsider)
    rubric, _ = rubric_publish(tenant=other_tenant, document=RUBRIC)
    application = application_override_set(tenant=other_tenant, name="app-of-b", mode="none")
    return {
        "policy": Policy.objects.for_tenant(other_tenant).get(),
        "rubric": rubric,
        "application": application,
        "api_key": api_key,
        "judge": judge_create(tenant=other_tenant, data={"name": "judge-of-b", "kind": "pii"}),
    }


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("policies/policy", "policy"),
        ("policies/rubric", "rubric"),
        ("policies/application", "application"),
        ("tenants/apikey", "api_key"),
        ("policies/judge", "judge"),
    ],
)
def test_history_and_change_pages_of_another_tenant_are_404(client, staff_of_a, b_objects, path, key):
    client.force_login(staff_of_a)
    pk = b_objects[key].pk

    assert client.get(f"/admin/{path}/{pk}/history/").status_code == 404
    history_id = type(b_objects[key]).history.filter(id=pk).values_list("history_id", flat=True).first()
    assert client.get(f"/admin/{path}/{pk}/history/{history_id}/").status_code == 404
    assert client.get(f"/admin/{path}/{pk}/change/").status_code in (302, 404)


def test_posting_a_history_form_of_another_tenant_changes_nothing(client, staff_of_a, b_objects, other_tenant):
    client.force_login(staff_of_a)
    policy = b_objects["policy"]
    history_id = policy.history.values_list("history_id", flat=True).first()

    response = client.post(
        f"/admin/policies/policy/{policy.pk}/history/{history_id}/",
        {"document": json.dumps(DEFAULT_POLICY), "reason": "pwned"},
    )

    assert response.status_code == 404
    assert Policy.objects.for_tenant(other_tenant).get().version == 1


def test_lists_filters_and_choices_show_nothing_of_another_tenant(client, staff_of_a, b_objects, tenant, other_tenant):
    client.force_login(staff_of_a)
    pages = [
        client.get("/admin/policies/application/").content.decode(),
        client.get("/admin/policies/rubric/").content.decode(),
        client.get("/admin/tenants/apikey/").content.decode(),
        client.get("/admin/tenants/membership/").content.decode(),
        client.get("/admin/reviews/output/").content.decode(),
        client.get("/admin/policies/application/add/").content.decode(),
        client.get("/admin/tenants/apikey/add/").content.decode(),
        client.get("/admin/policies/judge/").content.decode(),
        client.get("/admin/policies/judge/add/").content.decode(),
        client.get("/admin/reviews/judgement/").content.decode(),
        client.get("/admin/reviews/queueaccessevent/").content.decode(),
    ]
    for page in pages:
        for secret in (other_tenant.slug, "rubric-of-b", "app-of-b", "key-of-b", "member-of-b", "judge-of-b"):
            assert secret not in page


def test_an_application_cannot_be_given_another_tenants_rubric(client, staff_of_a, b_objects, tenant):
    client.force_login(staff_of_a)
    mine = application_override_set(tenant=tenant, name="mine", mode="none")

    response = client.post(
        f"/admin/policies/application/{mine.pk}/change/",
        {"override": "none", "override_reason": "", "rubric": b_objects["rubric"].pk},
    )

    assert response.status_code == 200  # the form again, with an error, not a 500
    assert Application.objects.for_tenant(tenant).get(name="mine").rubric_id is None
    assert Rubric.unscoped.filter(tenant=tenant).count() == 0
    assert ApiKey.unscoped.count() == 1


def test_queue_permission_page_does_not_reveal_other_tenants_people(client, staff_of_a, b_objects, tenant):
    from reviews.models import Queue

    client.force_login(staff_of_a)
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    url = f"/admin/reviews/queue/{queue.pk}/permissions/"

    outsider = client.post(url, {"user": "member-of-b", "submit_manage_user": "1"})
    nobody = client.post(url, {"user": "no-such-person", "submit_manage_user": "1"})

    assert outsider.status_code == nobody.status_code == 200
    assert "No member of your tenants has this username." in outsider.content.decode()
    assert "No member of your tenants has this username." in nobody.content.decode()


def test_a_judge_cannot_be_created_for_another_tenant(client, staff_of_a, tenant, other_tenant):
    client.force_login(staff_of_a)
    response = client.post(
        "/admin/policies/judge/add/",
        {
            "tenant": other_tenant.pk,
            "name": "sneaky",
            "kind": "pii",
            "applications": "[]",
            "tiers": "[]",
            "params": "{}",
            "on_fail": "force_review",
            "unsure_low": "0.4",
            "unsure_high": "0.6",
        },
    )
    assert response.status_code == 200  # the form again: that tenant is not a choice
    assert not Judge.unscoped.filter(name="sneaky").exists()


def test_the_user_picker_and_list_show_only_people_of_the_administered_tenants(client, staff_of_a, b_objects, tenant):
    colleague = UserFactory(username="member-of-a")
    membership_create(tenant=tenant, user=colleague, role="reviewer")
    staff_of_a.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(staff_of_a)

    found = client.get(
        "/admin/autocomplete/",
        {"app_label": "tenants", "model_name": "membership", "field_name": "user", "term": "member"},
    ).json()
    names = {item["text"] for item in found["results"]}
    assert "member-of-a" in names and "member-of-b" not in names
    listing = client.get("/admin/auth/user/").content.decode()
    assert "member-of-a" in listing and "member-of-b" not in listing
    outsider = b_objects["api_key"].user
    assert client.get(f"/admin/auth/user/{outsider.pk}/change/").status_code in (302, 404)
