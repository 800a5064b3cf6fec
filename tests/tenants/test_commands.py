"""Operator commands: create_tenant, create_api_key, demo."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from reviews.models import Output, Review, ReviewTask
from tenants.audit import audit_verify
from tenants.models import ApiKey, AuditEvent, Membership, Tenant
from tenants.selectors import tenant_get_by_slug
from tenants.services import membership_create
from tests.factories import UserFactory, output_payload


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_tenant_then_key_that_works_against_the_api(db):
    assert "Created tenant acme" in run("create_tenant", "acme", "--name", "Acme Inc")
    raw_key = run("create_api_key", "acme", "--role", "service").strip()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = client.post("/api/v1/outputs", output_payload(1), format="json")

    assert response.status_code == 201
    assert Output.objects.for_tenant(tenant_get_by_slug(slug="acme")).count() == 1
    assert Tenant.objects.get(slug="acme").name == "Acme Inc"


def test_create_tenant_refuses_a_bad_or_taken_slug(db):
    run("create_tenant", "acme")
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "acme")
    with pytest.raises(CommandError, match="slug"):
        run("create_tenant", "Not A Slug")


def test_create_api_key_for_a_user(tenant):
    person = UserFactory(username="rita")
    membership_create(tenant=tenant, user=person, role="reviewer")

    raw_key = run("create_api_key", tenant.slug, "--role", "reviewer", "--user", "rita").strip()

    assert ApiKey.objects.for_tenant(tenant).get().user == person
    assert raw_key.startswith("hitl_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--role", "service"], "No tenant"),
        (["{slug}", "--role", "reviewer"], "user"),
        (["{slug}", "--role", "admin", "--user", "ghost"], "No user"),
    ],
)
def test_create_api_key_errors(tenant, args, message):
    args = [arg.format(slug=tenant.slug) for arg in args]
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_demo_seeds_a_usable_tenant_and_can_run_again(db):
    first = run("demo", "--outputs", "12")
    second = run("demo", "--outputs", "12")

    tenant = tenant_get_by_slug(slug="demo")
    assert Output.objects.for_tenant(tenant).count() == 12
    for model, trace in Output.objects.for_tenant(tenant).values_list("model", "trace"):  # the story tells one tale
        assert [step["model"] for step in trace if step["type"] == "llm"] == [model]
    assert sorted(Membership.objects.for_tenant(tenant).values_list("role", flat=True)) == [
        "admin",
        "auditor",
        "quality_lead",
        "reviewer",
        "reviewer",
    ]
    assert ApiKey.objects.for_tenant(tenant).filter(revoked_at__isnull=True).count() == 5
    old_service_key = next(line.split()[1] for line in first.splitlines() if line.strip().startswith("service "))
    new_service_key = next(line.split()[1] for line in second.splitlines() if line.strip().startswith("service "))

    old, new = APIClient(), APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Bearer {old_service_key}")
    new.credentials(HTTP_AUTHORIZATION=f"Bearer {new_service_key}")
    assert old.get("/api/v1/outputs").status_code == 401
    assert len(new.get("/api/v1/outputs?page_size=100").json()["results"]) == 12


@pytest.mark.django_db(transaction=True)
def test_the_demo_starts_with_a_morning_of_reviews_made_through_the_product_and_leaves_work_pending():
    # Committed for real: the judges run when the seed commits, and only then do their tasks exist.
    first = run("demo")  # its default size: the morning's reviews leave most tasks waiting (at 30 outputs, about half)
    tenant = tenant_get_by_slug(slug="demo")
    reviews = list(Review.objects.for_tenant(tenant).values_list("reviewer__username", "decision"))

    assert reviews and {name for name, _ in reviews} <= {"rita", "sam", "admin"}
    assert {"approve", "correct"} <= {decision for _, decision in reviews}
    assert f"{len(reviews)} tasks reviewed" in first
    assert ReviewTask.objects.for_tenant(tenant).filter(status="pending").count() > len(reviews)
    reviewed_events = AuditEvent.objects.for_tenant(tenant).filter(kind="task.reviewed").count()
    assert reviewed_events == len(reviews) and audit_verify(tenant).ok

    run("demo")  # a second run refreshes keys and adds no reviews
    assert Review.objects.for_tenant(tenant).count() == len(reviews)
