"""The console's retention section: the period (a form that refuses less than 183 days) and legal holds."""

import pytest

from policies.models import LegalHold, Retention
from policies.retention import legal_hold_place
from tenants.models import AuditEvent
from tests.pages import field_errors, member, signed_in

pytestmark = pytest.mark.django_db


def test_an_admin_sets_the_period_with_a_reason_and_it_is_audited(tenant):
    admin = member(tenant, "admin", username="ada")
    client = signed_in(admin)
    page = client.get("/console/retention/").content.decode()
    assert "365 days" in page and "(the default)" in page

    response = client.post("/console/retention/", {"action": "retention", "days": "200", "reason": "counsel's advice"})

    assert response.status_code == 302
    assert Retention.objects.for_tenant(tenant).get().days == 200
    event = AuditEvent.objects.for_tenant(tenant).get(kind="retention.set")
    assert event.actor_person_id == admin.pk and event.data["after"] == {"days": 200}
    assert "200 days" in client.get("/console/retention/").content.decode()


def test_the_form_refuses_less_than_six_months_and_a_missing_reason(tenant):
    client = signed_in(member(tenant, "admin"))
    response = client.post("/console/retention/", {"action": "retention", "days": "182", "reason": "shorter"})
    assert response.status_code == 400
    assert "183" in field_errors(response.content.decode(), "id_days")
    response = client.post("/console/retention/", {"action": "retention", "days": "400", "reason": ""})
    assert response.status_code == 400 and "Say why" in field_errors(response.content.decode(), "id_reason")
    assert not Retention.objects.for_tenant(tenant).exists()


def test_holds_are_placed_and_released_with_reasons(tenant, other_tenant):
    client = signed_in(member(tenant, "admin"))
    empty = client.post("/console/retention/", {"action": "hold", "reason": "nothing named"})
    assert empty.status_code == 400 and "Name an application, a period, or both" in empty.content.decode()
    response = client.post(
        "/console/retention/",
        {"action": "hold", "application": "support-bot", "received_from": "2026-01-01", "reason": "case 7"},
    )
    assert response.status_code == 302
    hold = LegalHold.objects.for_tenant(tenant).get()
    assert (hold.application, hold.received_from.isoformat(), hold.is_active) == (
        "support-bot",
        "2026-01-01T00:00:00+00:00",
        True,
    )
    theirs = legal_hold_place(tenant=other_tenant, application="x", reason="theirs")
    assert (
        client.post("/console/retention/", {"action": "release", "hold": theirs.pk, "reason": "no"}).status_code == 404
    )
    client.post("/console/retention/", {"action": "release", "hold": hold.pk, "reason": "case closed"})
    hold.refresh_from_db()
    assert not hold.is_active and hold.release_reason == "case closed"
    kinds = set(AuditEvent.objects.for_tenant(tenant).values_list("kind", flat=True))
    assert {"legal_hold.placed", "legal_hold.released"} <= kinds


@pytest.mark.parametrize("role", ["auditor", "reviewer"])
def test_only_admins(tenant, role):
    client = signed_in(member(tenant, role))
    assert client.get("/console/retention/").status_code == 403
    assert client.post("/console/retention/", {"action": "retention", "days": "400", "reason": "x"}).status_code == 403
    assert not Retention.objects.for_tenant(tenant).exists()
