"""The API key admin: a tenant admin creates service keys and their own, revokes any key,
and never holds a key that acts for a colleague (the operator's command gives people keys:
tests/tenants/test_commands.py)."""

import pytest
from django.contrib.auth.models import Permission

from tenants.models import ApiKey
from tenants.services import api_key_create, membership_create
from tests.factories import UserFactory


@pytest.fixture
def tenant_admin(tenant):
    person = UserFactory(is_staff=True)
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(Permission.objects.filter(codename__in=["view_apikey", "add_apikey", "change_apikey"]))
    return person


@pytest.fixture
def colleague(tenant):
    person = UserFactory(username="rita")
    membership_create(tenant=tenant, user=person, role="reviewer")
    return person


@pytest.mark.parametrize("superuser", [False, True])
def test_admin_cannot_create_a_key_for_a_colleague(client, tenant_admin, tenant, colleague, superuser):
    tenant_admin.is_superuser = superuser
    tenant_admin.save(update_fields=["is_superuser"])
    client.force_login(tenant_admin)

    form = client.get("/admin/tenants/apikey/add/").content.decode()
    assert f'value="{colleague.pk}"' not in form  # not even offered
    response = client.post(
        "/admin/tenants/apikey/add/",
        {"tenant": tenant.pk, "name": "for rita", "role": "reviewer", "user": colleague.pk},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_admin_creates_a_key_for_themselves(client, tenant_admin, tenant):
    client.force_login(tenant_admin)

    response = client.post(
        "/admin/tenants/apikey/add/",
        {"tenant": tenant.pk, "name": "mine", "role": "admin", "user": tenant_admin.pk},
        follow=True,
    )

    assert response.status_code == 200
    assert ApiKey.objects.for_tenant(tenant).get(name="mine").user == tenant_admin


def test_admin_revokes_a_colleagues_key(client, tenant_admin, tenant, colleague):
    api_key, _ = api_key_create(tenant=tenant, role="reviewer", name="rita's", user=colleague, actor=colleague)
    client.force_login(tenant_admin)

    response = client.post(
        "/admin/tenants/apikey/", {"action": "revoke_keys", "_selected_action": [api_key.pk]}, follow=True
    )

    assert response.status_code == 200
    assert ApiKey.objects.for_tenant(tenant).get(pk=api_key.pk).revoked_at is not None
