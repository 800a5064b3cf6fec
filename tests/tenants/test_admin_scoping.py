"""The admin's tenant filter: a malformed value is a 400, not a server error."""

import pytest
from django.contrib.auth.models import Permission

from policies.services import rubric_publish
from tenants.services import membership_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
RUBRIC = {"name": "mine", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}


@pytest.mark.parametrize("superuser", [True, False])
def test_the_tenant_filter_takes_a_tenant_id_or_answers_400(client, tenant, superuser):
    person = UserFactory(is_staff=True, is_superuser=superuser)
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(Permission.objects.filter(content_type__app_label="policies"))
    rubric_publish(tenant=tenant, document=RUBRIC)
    client.force_login(person)

    assert "mine" in client.get(f"/admin/policies/rubric/?tenant={tenant.pk}").content.decode()
    assert "mine" not in client.get(f"/admin/policies/rubric/?tenant={tenant.pk + 1000}").content.decode()
    for value in ("abc", "%00", "1.5", "-1", "99999999999999999999"):
        assert client.get(f"/admin/policies/rubric/?tenant={value}").status_code == 400, value
