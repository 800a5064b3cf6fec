"""Tenants, memberships and API keys edited in the Django admin go through tenants.services:
the same rules, the same side effects (config token, revoked keys) and history as elsewhere."""

import pytest
from django.contrib.auth.models import Permission

from tenants.models import ApiKey, Membership, Tenant
from tenants.services import api_key_create, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory


@pytest.fixture
def tenant_admin(tenant):
    """A staff user who administers ``tenant`` and may change tenants, memberships and keys."""
    person = UserFactory(is_staff=True, username="tenant-admin")
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(Permission.objects.filter(content_type__app_label="tenants"))
    return person


@pytest.fixture
def rita(tenant):
    """A reviewer of ``tenant`` with her own reviewer key (an API client)."""
    person = UserFactory(username="rita")
    membership = membership_create(tenant=tenant, user=person, role="reviewer", skills=["legal"])
    client = make_client(tenant, "reviewer", user=person)
    client.membership = membership
    return client


def _token(tenant) -> str:
    return str(Tenant.objects.get(pk=tenant.pk).config_token)


def _claim(client):
    return client.post("/api/v1/tasks/claim", {}, format="json")


def _membership_form(membership, **changes) -> dict:
    form = {"role": membership.role, "reviewer_level": membership.reviewer_level, "skills": '["legal"]'}
    form.update(changes)
    return form


def test_tenant_rename_goes_through_the_service_and_the_slug_stays(admin_client, admin_user, tenant):
    slug = tenant.slug
    response = admin_client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", {"slug": "renamed-slug", "name": "Acme Insurance"}
    )

    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.slug, tenant.name) == (slug, "Acme Insurance")
    latest = tenant.history.order_by("-history_date").first()
    assert (latest.history_type, latest.name, latest.history_user) == ("~", "Acme Insurance", admin_user)


def test_a_tenant_admin_renames_their_tenant_but_not_another(client, tenant_admin, tenant, other_tenant):
    client.force_login(tenant_admin)

    mine = client.post(f"/admin/tenants/tenant/{tenant.pk}/change/", {"name": "Mine"})
    theirs = client.post(f"/admin/tenants/tenant/{other_tenant.pk}/change/", {"name": "Pwned"})

    assert mine.status_code == 302
    assert theirs.status_code in (302, 404)
    assert Tenant.objects.get(pk=tenant.pk).name == "Mine"
    assert Tenant.objects.get(pk=other_tenant.pk).name != "Pwned"


def test_tenants_are_not_deleted_in_the_admin(admin_client, tenant):
    assert admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get("/admin/tenants/tenant/").content.decode()
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_membership_change_renews_rights_and_revokes_keys_the_new_role_does_not_allow(
    client, tenant_admin, tenant, rita
):
    client.force_login(tenant_admin)
    assert _claim(rita).status_code == 204  # the key works (nothing to claim)
    before = _token(tenant)

    response = client.post(
        f"/admin/tenants/membership/{rita.membership.pk}/change/", _membership_form(rita.membership, role="viewer")
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    membership = Membership.objects.for_tenant(tenant).get(pk=rita.membership.pk)
    assert membership.role == "viewer"
    assert _token(tenant) != before  # cached reviewer rights are keyed by the token
    assert ApiKey.objects.for_tenant(tenant).get(pk=rita.api_key.pk).revoked_at is not None
    assert _claim(rita).status_code == 401
    latest = membership.history.order_by("-history_date").first()
    assert (latest.role, latest.history_user) == ("viewer", tenant_admin)


def test_membership_level_change_keeps_allowed_keys_and_renews_the_token(client, tenant_admin, tenant, rita):
    client.force_login(tenant_admin)
    before = _token(tenant)

    response = client.post(
        f"/admin/tenants/membership/{rita.membership.pk}/change/",
        _membership_form(rita.membership, reviewer_level=2, skills='["legal", "medical"]'),
    )

    assert response.status_code == 302
    membership = Membership.objects.for_tenant(tenant).get(pk=rita.membership.pk)
    assert (membership.reviewer_level, membership.skills) == (2, ["legal", "medical"])
    assert _token(tenant) != before
    assert ApiKey.objects.for_tenant(tenant).get(pk=rita.api_key.pk).revoked_at is None


def test_membership_person_and_tenant_are_fixed_once_created(client, tenant_admin, tenant, rita):
    client.force_login(tenant_admin)
    someone_else = UserFactory()

    response = client.post(
        f"/admin/tenants/membership/{rita.membership.pk}/change/",
        _membership_form(rita.membership, user=someone_else.pk),
    )

    assert response.status_code == 302
    assert Membership.objects.for_tenant(tenant).get(pk=rita.membership.pk).user == rita.api_key.user


def test_removing_a_member_in_the_admin_revokes_their_keys(client, tenant_admin, tenant, rita):
    client.force_login(tenant_admin)
    before = _token(tenant)

    response = client.post(f"/admin/tenants/membership/{rita.membership.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.for_tenant(tenant).filter(pk=rita.membership.pk).exists()
    assert ApiKey.objects.for_tenant(tenant).get(pk=rita.api_key.pk).revoked_at is not None
    assert _token(tenant) != before
    assert _claim(rita).status_code == 401
    deleted = Membership.history.filter(id=rita.membership.pk, history_type="-").get()
    assert deleted.history_user == tenant_admin


def test_bulk_removal_goes_through_the_service_for_each_member(client, tenant_admin, tenant, other_tenant, rita):
    client.force_login(tenant_admin)
    sam = UserFactory(username="sam")
    sams = membership_create(tenant=tenant, user=sam, role="auditor")
    sams_key, _ = api_key_create(tenant=tenant, role="auditor", name="sam's", user=sam, actor=sam)
    outsider = membership_create(tenant=other_tenant, user=UserFactory(), role="viewer")

    response = client.post(
        "/admin/tenants/membership/",
        {"action": "delete_selected", "_selected_action": [rita.membership.pk, sams.pk, outsider.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Membership.objects.for_tenant(tenant).filter(pk__in=[rita.membership.pk, sams.pk]).exists()
    assert Membership.objects.for_tenant(other_tenant).filter(pk=outsider.pk).exists()  # not theirs to remove
    revoked = ApiKey.objects.for_tenant(tenant).filter(pk__in=[rita.api_key.pk, sams_key.pk], revoked_at__isnull=False)
    assert revoked.count() == 2


def test_api_key_rename_goes_through_the_service_and_keys_are_revoked_not_deleted(
    client, tenant_admin, tenant, service_client
):
    client.force_login(tenant_admin)
    key = service_client.api_key

    response = client.post(f"/admin/tenants/apikey/{key.pk}/change/", {"name": "production", "role": "admin"})

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.role) == ("production", "service")
    assert key.history.order_by("-history_date").first().history_user == tenant_admin
    assert client.get(f"/admin/tenants/apikey/{key.pk}/delete/").status_code == 403
    assert client.post(f"/admin/tenants/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ApiKey.objects.for_tenant(tenant).filter(pk=key.pk).exists()


def test_a_history_page_does_not_restore_an_old_version(client, tenant_admin, tenant, rita):
    client.force_login(tenant_admin)
    membership = rita.membership
    first = membership.history.values_list("history_id", flat=True).get()
    client.post(f"/admin/tenants/membership/{membership.pk}/change/", _membership_form(membership, role="viewer"))

    page = f"/admin/tenants/membership/{membership.pk}/history/{first}/"
    assert client.get(page).status_code == 200
    response = client.post(page, _membership_form(membership, role="reviewer"))

    assert response.status_code == 403
    assert Membership.objects.for_tenant(tenant).get(pk=membership.pk).role == "viewer"
