"""API keys: shown once, stored hashed, revocable, role rules, last-used time."""

from datetime import timedelta

import pytest
from django.utils import timezone

from hitl.errors import DomainValidationError, ForbiddenError
from tenants.models import ApiKey, Tenant
from tenants.selectors import api_key_authenticate
from tenants.services import PLATFORM_OPERATOR, api_key_create, api_key_hash, api_key_revoke, membership_create
from tests.factories import UserFactory, output_payload


def test_key_is_stored_only_as_a_hash(tenant):
    api_key, raw_key = api_key_create(tenant=tenant, role="service", name="prod", actor=PLATFORM_OPERATOR)

    stored = ApiKey.objects.for_tenant(tenant).get(pk=api_key.pk)
    assert raw_key.startswith(f"hitl_{stored.prefix}_")
    assert stored.key_hash == api_key_hash(raw_key)
    assert raw_key not in str(ApiKey.objects.for_tenant(tenant).values().get())


def test_two_keys_never_share_a_prefix_or_secret(tenant):
    keys = [api_key_create(tenant=tenant, role="service", name=f"k{n}", actor=PLATFORM_OPERATOR)[1] for n in range(20)]
    assert len(set(keys)) == 20
    assert len({key.split("_")[1] for key in keys}) == 20


def test_revoked_key_stops_working(tenant, client_for):
    client = client_for(tenant, "service")
    assert client.get("/api/v1/outputs").status_code == 200

    api_key_revoke(api_key=client.api_key)

    response = client.get("/api/v1/outputs")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or revoked API key."


def test_a_tampered_secret_with_a_real_prefix_is_refused(tenant, client_for):
    client = client_for(tenant, "service")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {client.raw_key[:-2]}xx")

    assert client.get("/api/v1/outputs").status_code == 401


def test_last_used_is_recorded_but_at_most_once_a_minute(tenant, client_for):
    client = client_for(tenant, "service")
    assert client.api_key.last_used_at is None

    client.post("/api/v1/outputs", output_payload(1), format="json")
    first = ApiKey.objects.for_tenant(tenant).get(pk=client.api_key.pk).last_used_at
    client.post("/api/v1/outputs", output_payload(2), format="json")
    second = ApiKey.objects.for_tenant(tenant).get(pk=client.api_key.pk).last_used_at

    assert first is not None
    assert second == first
    ApiKey.unscoped.filter(pk=client.api_key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    client.get("/api/v1/outputs")
    assert ApiKey.objects.for_tenant(tenant).get(pk=client.api_key.pk).last_used_at > first


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "superuser", "name": "x"}, "role"),
        ({"role": "service", "name": ""}, "name"),
        ({"role": "reviewer", "name": "x"}, "user"),
    ],
)
def test_invalid_key_requests_name_the_field(tenant, kwargs, field):
    with pytest.raises(DomainValidationError) as caught:
        api_key_create(tenant=tenant, **kwargs, actor=PLATFORM_OPERATOR)
    assert field in caught.value.fields
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_a_key_for_a_person_needs_their_membership_in_that_tenant(tenant, other_tenant):
    person = UserFactory()
    membership_create(tenant=other_tenant, user=person, role="admin")

    with pytest.raises(DomainValidationError, match="not a member"):
        api_key_create(tenant=tenant, role="admin", name="x", user=person, actor=person)


@pytest.mark.parametrize(
    ("member_role", "key_role", "allowed"),
    [
        ("admin", "admin", True),
        ("admin", "service", True),
        ("reviewer", "reviewer", True),
        ("reviewer", "admin", False),
        ("auditor", "auditor", True),
        ("auditor", "service", False),
        ("viewer", "auditor", False),
    ],
)
def test_a_key_never_grants_more_than_its_person_has(tenant, member_role, key_role, allowed):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role=member_role)

    if allowed:
        api_key, _ = api_key_create(tenant=tenant, role=key_role, name="x", user=person, actor=person)
        assert api_key.user == person
    else:
        with pytest.raises(DomainValidationError) as caught:
            api_key_create(tenant=tenant, role=key_role, name="x", user=person, actor=person)
        assert "role" in caught.value.fields


def test_key_changes_are_kept_in_history(tenant):
    api_key, _ = api_key_create(tenant=tenant, role="service", name="prod", actor=PLATFORM_OPERATOR)
    api_key_revoke(api_key=api_key)

    records = list(api_key.history.order_by("history_date").values_list("history_type", "revoked_at"))
    assert [kind for kind, _ in records] == ["+", "~"]
    assert records[0][1] is None and records[1][1] is not None


def test_a_persons_key_stops_working_when_they_leave_or_are_downgraded(tenant, client_for):
    from tenants.models import Membership

    person = UserFactory()
    membership = membership_create(tenant=tenant, user=person, role="admin")
    client = client_for(tenant, "admin", user=person)
    assert client.get("/api/v1/policy").status_code == 200

    Membership.objects.for_tenant(tenant).filter(pk=membership.pk).update(role="viewer")
    assert client.get("/api/v1/policy").status_code == 401

    Membership.objects.for_tenant(tenant).filter(pk=membership.pk).delete()
    assert client.get("/api/v1/policy").status_code == 401


def test_a_deactivated_persons_key_stops_at_the_next_request(tenant, client_for):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer")
    client = client_for(tenant, "reviewer", user=person)
    assert client.get("/api/v1/policy").status_code == 200

    person.is_active = False
    person.save(update_fields=["is_active"])

    response = client.get("/api/v1/policy")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or revoked API key."
    person.is_active = True
    person.save(update_fields=["is_active"])
    assert client.get("/api/v1/policy").status_code == 200  # the key itself was never revoked


def test_a_deactivated_person_cannot_claim_even_with_rights_cached(tenant, client_for):
    from reviews.models import Queue
    from reviews.services.queues import queue_grant

    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer")
    queue_grant(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=person, actor=PLATFORM_OPERATOR)
    client = client_for(tenant, "reviewer", user=person)
    assert client.post("/api/v1/tasks/claim", {}, format="json").status_code == 204  # rights now cached

    type(person).objects.filter(pk=person.pk).update(is_active=False)

    assert client.post("/api/v1/tasks/claim", {}, format="json").status_code == 401


def test_a_person_creates_their_own_key(tenant):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer")

    api_key, raw_key = api_key_create(tenant=tenant, role="reviewer", name="mine", user=person, actor=person)

    assert api_key.user == person and raw_key.startswith("hitl_")


@pytest.mark.parametrize("admin_is_superuser", [False, True])
def test_an_admin_cannot_create_a_key_that_acts_for_a_colleague(tenant, admin_is_superuser):
    admin = UserFactory(is_superuser=admin_is_superuser)
    membership_create(tenant=tenant, user=admin, role="admin")
    colleague = UserFactory()
    membership_create(tenant=tenant, user=colleague, role="reviewer")

    with pytest.raises(ForbiddenError) as caught:
        api_key_create(tenant=tenant, role="reviewer", name="for rita", user=colleague, actor=admin)

    assert "user" in caught.value.fields
    assert caught.value.http_status == 403
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_the_platform_operator_creates_a_key_for_any_member(tenant):
    colleague = UserFactory()
    membership_create(tenant=tenant, user=colleague, role="reviewer")

    api_key, _ = api_key_create(
        tenant=tenant, role="reviewer", name="for rita", user=colleague, actor=PLATFORM_OPERATOR
    )

    assert api_key.user == colleague


def test_a_key_of_no_person_is_created_by_an_admin_of_the_tenant_only(tenant, other_tenant):
    admin = UserFactory()
    membership_create(tenant=tenant, user=admin, role="admin")
    reviewer = UserFactory()
    membership_create(tenant=tenant, user=reviewer, role="reviewer")
    admin_elsewhere = UserFactory()
    membership_create(tenant=other_tenant, user=admin_elsewhere, role="admin")

    api_key, _ = api_key_create(tenant=tenant, role="service", name="prod", actor=admin)
    assert api_key.user is None
    for outsider in (reviewer, admin_elsewhere):
        with pytest.raises(ForbiddenError):
            api_key_create(tenant=tenant, role="service", name="sneaky", actor=outsider)
    assert ApiKey.objects.for_tenant(tenant).count() == 1


def test_creating_a_key_names_who_creates_it(tenant):
    with pytest.raises(ForbiddenError, match="Name who acts"):
        api_key_create(tenant=tenant, role="service", name="prod", actor=None)
    assert not ApiKey.objects.for_tenant(tenant).exists()


def test_no_key_is_created_for_a_deactivated_person(tenant):
    person = UserFactory(is_active=False)
    membership_create(tenant=tenant, user=person, role="reviewer")

    with pytest.raises(DomainValidationError) as caught:
        api_key_create(tenant=tenant, role="reviewer", name="x", user=person, actor=PLATFORM_OPERATOR)
    assert "deactivated" in caught.value.fields["user"][0]


def test_authentication_loads_the_key_its_tenant_and_its_persons_role_in_one_query(tenant, django_assert_num_queries):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="admin")
    api_key, raw_key = api_key_create(tenant=tenant, role="admin", name="x", user=person, actor=person)
    api_key_revoke(
        api_key=api_key_create(tenant=tenant, role="service", name="other", actor=PLATFORM_OPERATOR)[0]
    )  # not this one

    with django_assert_num_queries(1):
        found = api_key_authenticate(raw_key=raw_key)
        tenant_of_key = found.tenant  # already loaded with the key
    # The instances are what the ORM loads (types converted alike on every database).
    stored_key = ApiKey.unscoped.get(pk=api_key.pk)
    stored_tenant = Tenant.objects.get(pk=tenant.pk)
    assert [getattr(found, f.attname) for f in ApiKey._meta.concrete_fields] == [
        getattr(stored_key, f.attname) for f in ApiKey._meta.concrete_fields
    ]
    assert [getattr(tenant_of_key, f.attname) for f in Tenant._meta.concrete_fields] == [
        getattr(stored_tenant, f.attname) for f in Tenant._meta.concrete_fields
    ]
    assert found.member_role == "admin"
    assert not found._state.adding
    with django_assert_num_queries(1):
        assert found.user == person  # the person is loaded only when asked for


def test_an_unknown_prefix_or_a_malformed_key_finds_nothing(tenant):
    _, raw_key = api_key_create(tenant=tenant, role="service", name="x", actor=PLATFORM_OPERATOR)
    prefix = raw_key.split("_")[1]

    assert api_key_authenticate(raw_key=raw_key.replace(prefix, "0" * len(prefix))) is None
    assert api_key_authenticate(raw_key=f"hitl_{prefix}") is None
    assert api_key_authenticate(raw_key=raw_key[len("hitl_") :]) is None
