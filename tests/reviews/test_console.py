"""The console's overview, queues and webhooks, and the access matrix of every console page:
admins of the tenant only; another tenant's objects are 404; a refusal writes nothing."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import get_perms

from policies.models import Application, Judge, Policy, Rubric
from policies.services import judge_create, rubric_publish
from reviews.models import DeliveryStatus, Queue, WebhookDelivery, WebhookEndpoint
from reviews.services.queues import queue_create, queue_grant
from reviews.services.webhooks import webhook_endpoint_create
from tenants.models import Membership
from tests.conftest import make_client
from tests.factories import output_payload
from tests.pages import field_errors, form_data, member, signed_in

HOOK = "https://hooks.example.com/decisions"


@pytest.fixture
def admin(tenant):
    return member(tenant, "admin", "ada")


def test_admins_land_on_the_console_and_only_admins_see_it_in_the_header(tenant, admin):
    page = signed_in(admin).get("/console/").content.decode()
    assert 'href="/console/"' in page and "Console of" in page and 'href="/console/policy/"' in page
    reviewer_page = signed_in(member(tenant, "reviewer")).get("/review/").content.decode()
    assert 'href="/console/"' not in reviewer_page


def test_the_overview_counts_this_tenant_only(tenant, other_tenant, admin):
    member(tenant, "reviewer")
    member(other_tenant, "reviewer")
    member(other_tenant, "reviewer")
    webhook_endpoint_create(tenant=other_tenant, url=HOOK, secret="s" * 20)

    page = signed_in(admin).get("/console/").content.decode()

    assert "<strong>2</strong> members: 1 admin, 1 reviewer." in page
    assert "<strong>0</strong> active endpoints" in page


# Queues -----------------------------------------------------------------------------


def test_a_queue_is_created_and_its_requirements_changed_in_its_history(tenant, admin):
    client = signed_in(admin)
    response = client.post(
        "/console/queues/",
        {
            "name": "legal",
            "tiers": ["high", "critical"],
            "applications": "legal-bot, contracts",
            "required_skills": "Legal",
            "min_reviewer_level": "2",
            "priority": "5",
        },
    )
    queue = Queue.objects.for_tenant(tenant).get(name="legal")
    assert response.status_code == 302 and response["Location"] == f"/console/queues/{queue.pk}/"
    assert (queue.tiers, queue.applications, queue.required_skills) == (
        ["high", "critical"],
        ["legal-bot", "contracts"],
        ["legal"],
    )
    assert (queue.min_reviewer_level, queue.priority) == (2, 5)

    data = form_data(client.get(f"/console/queues/{queue.pk}/").content.decode(), None)
    assert data["tiers"] == ["high", "critical"] and data["required_skills"] == "legal"
    client.post(f"/console/queues/{queue.pk}/", {**data, "action": "update", "tiers": "critical", "priority": "9"})
    queue.refresh_from_db()
    assert (queue.tiers, queue.priority) == (["critical"], 9)
    assert queue.history.order_by("-history_date").first().history_user == admin


def test_bad_queue_input_names_the_field_and_writes_nothing(tenant, admin):
    client = signed_in(admin)
    taken = client.post("/console/queues/", {"name": "default", "min_reviewer_level": "1", "priority": "0"})
    assert taken.status_code == 400 and "Already exists" in field_errors(taken.content.decode(), "id_name")
    level = client.post("/console/queues/", {"name": "x", "min_reviewer_level": "4", "priority": "0"})
    assert level.status_code == 400 and "Select a valid choice" in field_errors(
        level.content.decode(), "id_min_reviewer_level"
    )
    assert list(Queue.objects.for_tenant(tenant).values_list("name", flat=True)) == ["default"]


def test_members_are_granted_and_revoked_a_queue_and_only_this_tenants_members(tenant, other_tenant, admin):
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    rita = member(tenant, "reviewer", "rita")
    alex = member(tenant, "auditor", "alex")
    olga = member(other_tenant, "reviewer", "olga")
    client = signed_in(admin)
    membership = {person: Membership.unscoped.get(user=person) for person in (rita, alex, olga)}
    url = f"/console/queues/{queue.pk}/"
    assert f'value="{membership[rita].pk}"' in client.get(url).content.decode()

    client.post(url, {"action": "grant", "member": membership[rita].pk})
    assert get_perms(rita, queue) == ["work_queue"]
    assert "rita" in client.get("/console/queues/").content.decode()

    refused = client.post(url, {"action": "grant", "member": membership[alex].pk}, follow=True)
    assert "only reviewers and admins" in refused.content.decode() and get_perms(alex, queue) == []
    assert client.post(url, {"action": "grant", "member": membership[olga].pk}).status_code == 404
    assert client.post(url, {"action": "revoke", "user": olga.pk}).status_code == 404
    assert get_perms(olga, queue) == []

    client.post(url, {"action": "revoke", "user": rita.pk})
    assert get_perms(rita, queue) == []
    events = [(e.action, e.user, e.actor) for e in queue.access_events.order_by("created_at", "id")]
    assert events == [("grant", rita, admin), ("revoke", rita, admin)]  # who gave and took it
    assert "Grants and revocations" in client.get(url).content.decode()


def queries_of(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_lists_read_a_fixed_number_of_queries_however_many_rows(tenant, admin):
    client = signed_in(admin)
    client.get("/console/")  # session and caches warm, as in a running server
    judge_create(tenant=tenant, data={"name": "first", "kind": "pii"})
    urls = ["/console/queues/", "/console/members/", "/console/webhooks/", "/console/judges/"]
    few = [queries_of(client, url) for url in urls]
    for number in range(6):
        queue = queue_create(tenant=tenant, name=f"q{number}")
        queue_grant(queue=queue, user=member(tenant, "reviewer"), actor=admin)
        webhook_endpoint_create(tenant=tenant, url=f"{HOOK}/{number}", secret="s" * 20)
        judge_create(tenant=tenant, data={"name": f"judge-{number}", "kind": "pii"})
    assert [queries_of(client, url) for url in urls] == few


# Webhooks ---------------------------------------------------------------------------


def test_an_endpoint_is_added_with_a_generated_secret_shown_once(tenant, admin):
    client = signed_in(admin)
    response = client.post("/console/webhooks/", {"url": HOOK, "description": "billing system", "secret": ""})

    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).get()
    assert len(endpoint.secret) >= 32 and endpoint.secret in response.content.decode()
    assert endpoint.secret not in client.get("/console/webhooks/").content.decode()
    assert endpoint.secret not in client.get(f"/console/webhooks/{endpoint.pk}/").content.decode()

    chosen = client.post("/console/webhooks/", {"url": HOOK + "/2", "secret": "a-chosen-secret-of-20"})
    assert chosen.status_code == 302 and WebhookEndpoint.objects.for_tenant(tenant).count() == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "id_url", "http"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "id_url", "user-info"),
        ({"url": HOOK, "secret": "short"}, "id_secret", "at least 16 characters"),
    ],
)
def test_bad_endpoints_name_the_field_and_write_nothing(tenant, admin, body, field, message):
    response = signed_in(admin).post("/console/webhooks/", body)
    assert response.status_code == 400
    errors = field_errors(response.content.decode(), field)
    assert errors and message in errors
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


def test_an_endpoint_is_switched_off_and_on_in_its_history(tenant, admin):
    endpoint = webhook_endpoint_create(tenant=tenant, url=HOOK, secret="s" * 20)
    client = signed_in(admin)

    client.post(f"/console/webhooks/{endpoint.pk}/", {"action": "deactivate"})
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.history.order_by("-history_date").first().history_user == admin
    assert "switched off" in client.get("/console/webhooks/").content.decode()

    client.post(f"/console/webhooks/{endpoint.pk}/", {"action": "activate"})
    endpoint.refresh_from_db()
    assert endpoint.is_active


def delivery(tenant, endpoint, status=DeliveryStatus.FAILED, number=1):
    output_id = (
        make_client(tenant, "service").post("/api/v1/outputs", output_payload(number), format="json").json()["id"]
    )
    return WebhookDelivery.objects.for_tenant(tenant).create(
        endpoint=endpoint, output_id=output_id, payload={}, status=status, attempts=5, last_error="HTTP 500"
    )


def test_recent_deliveries_are_listed_and_a_failed_one_is_replayed(tenant, admin, django_capture_on_commit_callbacks):
    endpoint = webhook_endpoint_create(tenant=tenant, url=HOOK, secret="s" * 20)
    failed = delivery(tenant, endpoint)
    client = signed_in(admin)
    page = client.get(f"/console/webhooks/{endpoint.pk}/").content.decode()
    assert "ext-1" in page and "HTTP 500" in page and f'value="{failed.pk}"' in page

    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        response = client.post(f"/console/webhooks/{endpoint.pk}/", {"action": "replay", "delivery": failed.pk})

    assert response.status_code == 302 and len(enqueued) == 1
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    # Pending now, waiting for its attempt: it may be replayed again (sent at once), not refused.
    assert f'value="{failed.pk}"' in client.get(f"/console/webhooks/{endpoint.pk}/").content.decode()
    again = client.post(f"/console/webhooks/{endpoint.pk}/", {"action": "replay", "delivery": failed.pk}, follow=True)
    assert "Delivery queued again" in again.content.decode()


def test_another_tenants_endpoint_and_delivery_are_not_found(tenant, other_tenant, admin):
    theirs = webhook_endpoint_create(tenant=other_tenant, url=HOOK, secret="s" * 20)
    their_delivery = delivery(other_tenant, theirs)
    mine = webhook_endpoint_create(tenant=tenant, url=HOOK, secret="s" * 20)
    client = signed_in(admin)

    assert client.get(f"/console/webhooks/{theirs.pk}/").status_code == 404
    assert client.post(f"/console/webhooks/{theirs.pk}/", {"action": "deactivate"}).status_code == 404
    replay = {"action": "replay", "delivery": their_delivery.pk}
    assert client.post(f"/console/webhooks/{mine.pk}/", replay).status_code == 404
    assert client.post(f"/console/webhooks/{mine.pk}/", {"action": "replay", "delivery": "nope"}).status_code == 404
    theirs.refresh_from_db()
    their_delivery.refresh_from_db()
    assert theirs.is_active and their_delivery.status == "failed"


# Every console page: who may open it ------------------------------------------------


@pytest.fixture
def objects(tenant):
    """One object of each kind a console URL names."""
    rubric_publish(
        tenant=tenant, document={"name": "quality", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}
    )
    make_client(tenant, "service").post("/api/v1/outputs", output_payload(1), format="json")
    return {
        "queue": Queue.objects.for_tenant(tenant).get(name="default").pk,
        "judge": judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"}).pk,
        "webhook": webhook_endpoint_create(tenant=tenant, url=HOOK, secret="s" * 20).pk,
        "member": Membership.objects.for_tenant(tenant).get(user=member(tenant, "reviewer")).pk,
    }


def console_urls(objects) -> list[str]:
    return [
        "/console/",
        "/console/policy/",
        "/console/applications/",
        "/console/applications/support-bot/stop?mode=block",
        "/console/members/",
        f"/console/members/{objects['member']}/",
        "/console/queues/",
        f"/console/queues/{objects['queue']}/",
        "/console/rubrics/",
        "/console/rubrics/quality/",
        "/console/judges/",
        "/console/judges/new/",
        f"/console/judges/{objects['judge']}/",
        "/console/webhooks/",
        f"/console/webhooks/{objects['webhook']}/",
    ]


def history_rows(tenant) -> int:
    return sum(
        model.history.filter(tenant_id=tenant.pk).count()
        for model in (Policy, Application, Rubric, Judge, Queue, WebhookEndpoint, Membership)
    )


def unlabelled_fields(page: str) -> list[str]:
    """Inputs, selects and text areas a screen reader could not name: no label, no aria-label."""
    labelled = set(re.findall(r'<label[^>]*\sfor="([^"]+)"', page))
    missing = []
    for tag in re.finditer(r"<(input|select|textarea)\b([^>]*)>", page):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag.group(2)))
        if attrs.get("type") in ("hidden", "submit", "button") or "aria-label" in attrs:
            continue
        if attrs.get("id") not in labelled:
            missing.append(tag.group(0))
    return missing


def test_every_console_page_opens_for_an_admin_of_the_tenant_with_every_field_labelled(tenant, admin, objects):
    client = signed_in(admin)
    for url in console_urls(objects):
        response = client.get(url)
        assert response.status_code == 200, url
        assert unlabelled_fields(response.content.decode()) == [], url
        assert "<script>" not in response.content.decode() and ' style="' not in response.content.decode(), url


@pytest.mark.parametrize("role", ["reviewer", "auditor", "viewer"])
def test_every_console_page_refuses_other_roles_and_a_refused_post_writes_nothing(tenant, objects, role):
    client = signed_in(member(tenant, role))
    before = history_rows(tenant)
    for url in console_urls(objects):
        assert client.get(url).status_code == 403, url
        post = {"action": "remove", "reason": "x", "mode": "block", "name": "x", "url": HOOK, "email": "a@b.example"}
        assert client.post(url.split("?")[0], post).status_code == 403, url
    assert history_rows(tenant) == before


def test_anonymous_people_are_sent_to_sign_in(db, objects):
    for url in console_urls(objects):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_another_tenants_admin_gets_404_for_every_object_of_this_tenant(tenant, other_tenant, objects):
    client = signed_in(member(other_tenant, "admin"))
    before = history_rows(tenant)
    for url in console_urls(objects):
        if url.rstrip("/").count("/") < 3 or url.endswith("/new/"):
            continue  # lists and forms: they show the other tenant's own
        assert client.get(url).status_code == 404, url
        post = {"action": "remove", "reason": "x", "mode": "block", "role": "admin", "reviewer_level": "1"}
        assert client.post(url.split("?")[0], post).status_code == 404, url
    assert history_rows(tenant) == before
