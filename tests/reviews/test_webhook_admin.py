"""Webhook endpoints and deliveries in the Django admin: created, changed, deactivated and
replayed through the webhook services, with the same refusals as the API."""

import pytest
from django.contrib.auth.models import Permission

from hitl.errors import DomainValidationError
from reviews.models import DeliveryStatus, Output, WebhookDelivery, WebhookEndpoint
from reviews.services.webhooks import webhook_endpoint_create, webhook_url_validate
from tenants.models import Tenant
from tenants.services import membership_create
from tests.factories import UserFactory, output_payload

SECRET = "a-webhook-secret-of-20"


@pytest.fixture
def staff_admin(tenant):
    """A staff user who administers ``tenant`` and may manage its webhooks."""
    person = UserFactory(is_staff=True, username="webhook-admin")
    membership_create(tenant=tenant, user=person, role="admin")
    person.user_permissions.set(
        Permission.objects.filter(content_type__app_label="reviews", codename__contains="webhook")
    )
    return person


@pytest.fixture
def endpoint(tenant):
    return webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/a", secret=SECRET, description="a")


def _token(tenant) -> str:
    return str(Tenant.objects.get(pk=tenant.pk).config_token)


def test_an_ftp_url_is_refused_like_the_api_does_and_nothing_is_written(client, staff_admin, tenant):
    client.force_login(staff_admin)
    before = _token(tenant)

    response = client.post(
        "/admin/reviews/webhookendpoint/add/",
        {"tenant": tenant.pk, "url": "ftp://files.example.com/drop", "secret": SECRET, "description": "x"},
    )

    assert response.status_code == 200  # the form again, not a 500
    with pytest.raises(DomainValidationError) as the_apis_refusal:  # what POST /api/v1/webhooks answers
        webhook_url_validate("ftp://files.example.com/drop")
    assert response.context["adminform"].form.errors["url"] == the_apis_refusal.value.fields["url"]
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()
    assert _token(tenant) == before


def test_an_https_endpoint_is_created_through_the_service(client, staff_admin, tenant):
    client.force_login(staff_admin)
    before = _token(tenant)

    response = client.post(
        "/admin/reviews/webhookendpoint/add/",
        {"tenant": tenant.pk, "url": "https://hooks.example.com/decisions", "secret": SECRET, "description": "x"},
    )

    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).get()
    assert (endpoint.url, endpoint.secret, endpoint.is_active) == ("https://hooks.example.com/decisions", SECRET, True)
    assert _token(tenant) != before  # decisions check "any endpoint?" from the cached routing table


def test_a_change_keeps_url_and_secret_unless_a_new_secret_is_given(client, staff_admin, tenant, endpoint):
    client.force_login(staff_admin)
    page = f"/admin/reviews/webhookendpoint/{endpoint.pk}/change/"
    before = _token(tenant)

    first = client.post(page, {"url": "ftp://elsewhere.example.com/", "secret": "", "description": "billing"})
    endpoint.refresh_from_db()
    assert first.status_code == 302
    assert (endpoint.url, endpoint.secret, endpoint.description, endpoint.is_active) == (
        "https://hooks.example.com/a",
        SECRET,
        "billing",
        False,  # the box was not ticked
    )
    assert _token(tenant) != before
    assert endpoint.history.order_by("-history_date").first().history_user == staff_admin

    rotated = "another-secret-of-twenty"
    second = client.post(page, {"secret": rotated, "description": "billing", "is_active": "on"})
    endpoint.refresh_from_db()
    assert second.status_code == 302
    assert (endpoint.secret, endpoint.is_active) == (rotated, True)


def test_endpoints_are_deactivated_not_deleted(client, staff_admin, tenant, endpoint):
    client.force_login(staff_admin)

    assert client.post(f"/admin/reviews/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = client.get("/admin/reviews/webhookendpoint/").content.decode()
    assert "delete_selected" not in changelist
    response = client.post(
        "/admin/reviews/webhookendpoint/", {"action": "deactivate", "_selected_action": [endpoint.pk]}
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.is_active is False


def test_replay_sends_pending_and_failed_deliveries_again(client, staff_admin, tenant, endpoint, service_client):
    # A pending delivery used to be refused ("still being attempted"): replay now sends it at once too.
    client.force_login(staff_admin)
    service_client.post("/api/v1/outputs", output_payload(1), format="json")
    output = Output.objects.for_tenant(tenant).get()
    pending, failed = (
        WebhookDelivery.objects.for_tenant(tenant).create(
            endpoint=endpoint, output=output, payload={}, status=status, attempts=3
        )
        for status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
    )

    response = client.post(
        "/admin/reviews/webhookdelivery/",
        {"action": "replay", "_selected_action": [pending.pk, failed.pk]},
        follow=True,
    )

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert shown == ["2 deliveries queued again."]
    for delivery in (pending, failed):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)  # a fresh series


def test_switching_on_an_endpoint_checks_its_url_again(client, staff_admin, tenant):
    client.force_login(staff_admin)
    # A row saved before the admin went through the service (it took any URL Django's field did).
    legacy = WebhookEndpoint.objects.for_tenant(tenant).create(
        url="ftp://files.example.com/drop", secret=SECRET, is_active=False
    )

    response = client.post(
        f"/admin/reviews/webhookendpoint/{legacy.pk}/change/", {"secret": "", "description": "", "is_active": "on"}
    )

    assert response.status_code == 200
    assert any(error.startswith("url: ") for error in response.context["adminform"].form.non_field_errors())
    legacy.refresh_from_db()
    assert legacy.is_active is False
