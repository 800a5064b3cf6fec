"""Who may work a queue, granted on guardian's object-permission pages in the admin: through
queue_grant / queue_revoke (the role check, the config token), never past them."""

import pytest
from django.contrib.auth.models import Group, Permission
from guardian.shortcuts import get_group_perms, get_user_perms

from reviews.models import Queue
from tenants.models import Tenant
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory
from tests.reviews.conftest import claim, submit


@pytest.fixture
def staff_admin(tenant):
    """A staff user who administers ``tenant`` and may view and change queues."""
    person = UserFactory(is_staff=True, username="queue-admin")
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(Permission.objects.filter(codename__in=["view_queue", "change_queue"]))
    return person


@pytest.fixture
def queue(tenant):
    return Queue.objects.for_tenant(tenant).get(name="default")


def _member(tenant, role: str, username: str):
    person = UserFactory(username=username)
    membership_create(tenant=tenant, user=person, role=role)
    return person


def _user_page(queue, person) -> str:
    return f"/admin/reviews/queue/{queue.pk}/permissions/user-manage/{person.pk}/"


def _token(tenant) -> str:
    return str(Tenant.objects.get(pk=tenant.pk).config_token)


def _errors(response) -> str:
    return " ".join(str(error) for error in response.context["form"].errors.values())


@pytest.mark.parametrize("role", ["viewer", "auditor"])
def test_granting_a_queue_to_someone_who_does_not_review_is_refused(client, staff_admin, tenant, queue, role):
    client.force_login(staff_admin)
    person = _member(tenant, role, f"a-{role}")
    before = _token(tenant)

    response = client.post(_user_page(queue, person), {"permissions": ["work_queue"]})

    assert response.status_code == 200  # the form again, with the service's reason
    assert "Not a reviewer of this tenant." in _errors(response)
    assert list(get_user_perms(person, queue)) == []
    assert _token(tenant) == before


def test_a_superuser_cannot_grant_a_queue_to_another_tenants_reviewer(admin_client, tenant, other_tenant, queue):
    outsider = _member(other_tenant, "reviewer", "their-reviewer")
    before = _token(tenant)

    response = admin_client.post(_user_page(queue, outsider), {"permissions": ["work_queue"]})

    assert response.status_code == 200
    assert "Not a reviewer of this tenant." in _errors(response)
    assert list(get_user_perms(outsider, queue)) == []
    assert _token(tenant) == before


def test_a_tenant_admin_cannot_reach_another_tenants_people_by_id(client, staff_admin, other_tenant, queue):
    client.force_login(staff_admin)
    outsider = _member(other_tenant, "reviewer", "their-reviewer")

    assert client.get(_user_page(queue, outsider)).status_code == 404
    assert client.post(_user_page(queue, outsider), {"permissions": ["work_queue"]}).status_code == 404
    assert list(get_user_perms(outsider, queue)) == []


def test_a_tenant_admin_cannot_manage_another_tenants_queue(client, staff_admin, tenant, other_tenant):
    client.force_login(staff_admin)
    theirs = Queue.objects.for_tenant(other_tenant).get(name="default")
    mine = _member(tenant, "reviewer", "my-reviewer")

    assert client.post(_user_page(theirs, mine), {"permissions": ["work_queue"]}).status_code == 404
    assert list(get_user_perms(mine, theirs)) == []


def test_a_grant_to_a_reviewer_takes_effect_on_the_next_claim(client, staff_admin, tenant, queue, workflow):
    client.force_login(staff_admin)
    submit(workflow, 1, "low-app")
    rita = _member(tenant, "reviewer", "rita")
    ritas_key = make_client(tenant, "reviewer", user=rita)
    assert claim(ritas_key).status_code == 204  # not granted yet: nothing she may claim

    page = client.get(_user_page(queue, rita)).content.decode()
    response = client.post(_user_page(queue, rita), {"permissions": ["work_queue"]})

    assert "delete_queue" not in page  # only the permission that means something is offered
    assert response.status_code == 302
    assert set(get_user_perms(rita, queue)) == {"work_queue"}
    claimed = claim(ritas_key)
    assert claimed.status_code == 200
    assert claimed.json()["queue"] == "default"


def test_revoking_in_the_admin_takes_effect_on_the_next_claim(client, staff_admin, tenant, queue, workflow):
    from reviews.services.queues import queue_grant
    from tenants.services import PLATFORM_OPERATOR

    client.force_login(staff_admin)
    submit(workflow, 1, "low-app")
    rita = _member(tenant, "reviewer", "rita")
    queue_grant(queue=queue, user=rita, actor=PLATFORM_OPERATOR)
    ritas_key = make_client(tenant, "reviewer", user=rita)
    assert claim(ritas_key).status_code == 200  # her rights are now cached under the current token

    response = client.post(_user_page(queue, rita), {})  # nothing selected: revoke

    assert response.status_code == 302
    assert list(get_user_perms(rita, queue)) == []
    submit(workflow, 2, "low-app")
    assert claim(ritas_key).status_code == 204


def test_group_grants_are_the_operators_and_go_through_the_service(client, staff_admin, admin_client, tenant, queue):
    group = Group.objects.create(name="legal-reviewers")
    page = f"/admin/reviews/queue/{queue.pk}/permissions/"
    group_page = f"{page}group-manage/{group.pk}/"

    client.force_login(staff_admin)
    named = client.post(page, {"group": "legal-reviewers", "submit_manage_group": "1"})
    assert named.status_code == 200
    assert "Groups are managed by the platform operator" in named.content.decode()
    assert client.post(group_page, {"permissions": ["work_queue"]}).status_code == 403
    assert list(get_group_perms(group, queue)) == []

    before = _token(tenant)
    response = admin_client.post(group_page, {"permissions": ["work_queue"]})
    assert response.status_code == 302
    assert set(get_group_perms(group, queue)) == {"work_queue"}
    assert _token(tenant) != before

    before = _token(tenant)
    assert admin_client.post(group_page, {}).status_code == 302
    assert list(get_group_perms(group, queue)) == []
    assert _token(tenant) != before


def test_grants_made_on_the_admin_page_are_recorded_under_the_admins_name(client, staff_admin, tenant, queue):
    from reviews.models import QueueAccessEvent

    client.force_login(staff_admin)
    rita = _member(tenant, "reviewer", "rita")

    client.post(_user_page(queue, rita), {"permissions": ["work_queue"]})
    client.post(_user_page(queue, rita), {})

    events = QueueAccessEvent.objects.for_tenant(tenant).order_by("created_at", "pk")
    assert [(e.action, e.user, e.actor) for e in events] == [
        ("grant", rita, staff_admin),
        ("revoke", rita, staff_admin),
    ]
