"""The Django admin shows each staff user only the tenants they administer."""

import pytest

from reviews.models import Output
from tenants.models import ApiKey
from tenants.services import membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload


@pytest.fixture
def tenant_admin(tenant):
    person = UserFactory(is_staff=True)
    membership_create(tenant=tenant, user=person, role="admin")
    from django.contrib.auth.models import Permission

    person.user_permissions.set(
        Permission.objects.filter(codename__in=["view_output", "view_apikey", "add_apikey", "change_apikey"])
    )
    return person


@pytest.fixture
def two_tenants_with_outputs(tenant, other_tenant):
    make_client(tenant, "service").post("/api/v1/outputs", output_payload(1, output="mine"), format="json")
    make_client(other_tenant, "service").post("/api/v1/outputs", output_payload(2, output="theirs"), format="json")


def test_tenant_admin_sees_only_their_tenants_outputs(client, tenant_admin, two_tenants_with_outputs, other_tenant):
    client.force_login(tenant_admin)

    page = client.get("/admin/reviews/output/")
    assert page.status_code == 200
    assert "ext-1" in page.content.decode()
    assert "ext-2" not in page.content.decode()

    foreign = Output.objects.for_tenant(other_tenant).get()
    assert client.get(f"/admin/reviews/output/{foreign.pk}/change/").status_code in (302, 404)


def test_api_key_created_in_admin_is_shown_once(client, tenant_admin, tenant, other_tenant):
    client.force_login(tenant_admin)

    form = client.get("/admin/tenants/apikey/add/").content.decode()
    assert other_tenant.slug not in form  # only administered tenants are offered
    response = client.post(
        "/admin/tenants/apikey/add/", {"tenant": tenant.pk, "name": "from admin", "role": "service"}, follow=True
    )

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    raw_key = next(text.split(": ")[-1] for text in shown if "not shown again" in text)
    api_key = ApiKey.objects.for_tenant(tenant).get(name="from admin")
    assert raw_key.startswith(f"hitl_{api_key.prefix}_")
    assert raw_key not in client.get(f"/admin/tenants/apikey/{api_key.pk}/change/").content.decode()


def test_api_key_admin_form_explains_role_rules(client, tenant_admin, tenant):
    client.force_login(tenant_admin)

    response = client.post("/admin/tenants/apikey/add/", {"tenant": tenant.pk, "name": "r", "role": "reviewer"})

    assert response.status_code == 200
    assert "A reviewer key acts for a person" in response.content.decode()
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_admin_cannot_add_or_edit_outputs(admin_client, two_tenants_with_outputs):
    assert admin_client.get("/admin/reviews/output/add/").status_code == 403
    output = Output.unscoped.first()
    response = admin_client.post(f"/admin/reviews/output/{output.pk}/change/", {"output": "edited"})
    assert response.status_code == 403
    output.refresh_from_db()
    assert output.output != "edited"


def test_a_webhook_url_with_user_info_is_refused_in_the_admin_too(admin_client, tenant):
    from reviews.models import WebhookEndpoint

    response = admin_client.post(
        "/admin/reviews/webhookendpoint/add/",
        {"tenant": tenant.pk, "url": "https://user:pass@hooks.example/x", "secret": "s" * 20, "is_active": "on"},
    )

    assert response.status_code == 200  # the form again, with its error
    assert "must not contain user-info" in response.content.decode()
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()
