"""The stop button in the console: every application seen or configured, a confirmation with
a reason, then ``application_override_set`` (the API's service and history)."""

import pytest

from policies.models import Application
from policies.services import application_override_set
from tests.conftest import make_client
from tests.factories import output_payload
from tests.pages import field_errors, member, signed_in


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


@pytest.fixture
def service(tenant):
    client = make_client(tenant, "service")
    client.post("/api/v1/outputs", output_payload(1, application="support-bot"), format="json")
    client.post("/api/v1/outputs", output_payload(2, application="triage"), format="json")
    return client


def test_the_list_has_applications_seen_in_outputs_and_configured_ones(tenant, admin, service):
    application_override_set(tenant=tenant, name="not-live-yet", mode="block", reason="not reviewed yet")

    page = signed_in(admin).get("/console/applications/").content.decode()

    for name in ("support-bot", "triage", "not-live-yet"):
        assert f'<th scope="row">{name}</th>' in page
    assert "not reviewed yet" in page and "blocked" in page


def test_the_confirmation_says_what_will_happen_and_nothing_changes_until_confirmed(tenant, admin, service):
    response = signed_in(admin).get("/console/applications/support-bot/stop?mode=block")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Block support-bot?" in page and "every new output is refused delivery" in page
    assert not Application.objects.for_tenant(tenant).exists()


def test_confirming_with_a_reason_sets_the_stop_button_in_the_history_and_ingest_follows_it(tenant, admin, service):
    client = signed_in(admin)

    no_reason = client.post("/console/applications/support-bot/stop", {"mode": "block", "reason": ""})
    assert no_reason.status_code == 400
    assert "Say why" in field_errors(no_reason.content.decode(), "id_reason")
    assert not Application.objects.for_tenant(tenant).exists()

    response = client.post("/console/applications/support-bot/stop", {"mode": "block", "reason": "leaking data"})

    assert response.status_code == 302 and response["Location"] == "/console/applications/"
    application = Application.objects.for_tenant(tenant).get(name="support-bot")
    record = application.history.order_by("-history_date").first()
    assert (record.override, record.history_user, record.history_change_reason) == ("block", admin, "leaking data")
    blocked = service.post("/api/v1/outputs", output_payload(3, application="support-bot"), format="json").json()
    assert blocked["delivery"] == "block"

    client.post("/console/applications/support-bot/stop", {"mode": "none", "reason": "fixed"})
    assert Application.objects.for_tenant(tenant).get(name="support-bot").override == "none"
    history = client.get("/console/applications/support-bot/stop?mode=none").content.decode()
    assert "leaking data" in history and "fixed" in history


def test_a_mode_that_does_not_exist_is_refused(tenant, admin, service):
    response = signed_in(admin).post("/console/applications/support-bot/stop", {"mode": "explode", "reason": "x"})
    assert response.status_code == 400 and not Application.objects.for_tenant(tenant).exists()


def test_another_tenants_application_is_not_found(tenant, other_tenant, service):
    outsider = member(other_tenant, "admin")
    client = signed_in(outsider)

    assert client.get("/console/applications/support-bot/stop?mode=block").status_code == 404
    assert client.post("/console/applications/support-bot/stop", {"mode": "block", "reason": "x"}).status_code == 404
    assert "support-bot" not in client.get("/console/applications/").content.decode()
    assert not Application.unscoped.exists()


@pytest.mark.parametrize("role", ["reviewer", "auditor"])
def test_other_roles_may_not_press_it(tenant, service, role):
    client = signed_in(member(tenant, role))
    assert client.get("/console/applications/").status_code == 403
    response = client.post("/console/applications/support-bot/stop", {"mode": "block", "reason": "x"})
    assert response.status_code == 403 and not Application.objects.for_tenant(tenant).exists()
