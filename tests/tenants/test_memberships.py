"""Memberships: one per person and tenant, a role in each, levels 1-3."""

import pytest
from django.db import IntegrityError, transaction

from hitl.errors import DomainValidationError
from reviews.services.onboarding import tenant_onboard
from tenants.models import ApiKey, Membership
from tenants.services import api_key_create, membership_create, membership_delete, membership_update
from tests.factories import UserFactory


def test_a_person_can_have_different_roles_in_different_tenants(tenant, other_tenant):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=2, skills=["legal"])
    membership_create(tenant=other_tenant, user=person, role="auditor")

    roles = dict(Membership.unscoped.filter(user=person).values_list("tenant__slug", "role"))
    assert roles == {tenant.slug: "reviewer", other_tenant.slug: "auditor"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"role": "reviewer", "reviewer_level": 4}, "reviewer_level"),
        ({"role": "reviewer", "skills": ["", 3]}, "skills"),
    ],
)
def test_invalid_membership_names_the_field(tenant, kwargs, field):
    with pytest.raises(DomainValidationError) as caught:
        membership_create(tenant=tenant, user=UserFactory(), **kwargs)
    assert field in caught.value.fields


def test_second_membership_in_the_same_tenant_is_refused(tenant):
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="viewer")

    with pytest.raises(DomainValidationError, match="already a member"):
        membership_create(tenant=tenant, user=person, role="admin")


def test_database_enforces_the_level_range(tenant):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.for_tenant(tenant).create(user=UserFactory(), role="reviewer", reviewer_level=9)


@pytest.mark.parametrize("slug", ["", "Has Space", "x" * 64])
def test_tenant_slug_is_validated(db, slug):
    with pytest.raises(DomainValidationError) as caught:
        tenant_onboard(slug=slug)
    assert "slug" in caught.value.fields


def test_duplicate_tenant_slug_is_refused(tenant):
    with pytest.raises(DomainValidationError, match="slug"):
        tenant_onboard(slug=tenant.slug)


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"role": "owner"}, "role"), ({"reviewer_level": 0}, "reviewer_level"), ({"skills": "legal"}, "skills")],
)
def test_membership_update_validates_like_create(tenant, changes, field):
    membership = membership_create(tenant=tenant, user=UserFactory(), role="reviewer")
    wanted = {"role": "reviewer", "reviewer_level": 1, "skills": [], **changes}

    with pytest.raises(DomainValidationError) as caught:
        membership_update(membership=membership, **wanted)

    assert field in caught.value.fields
    assert Membership.objects.for_tenant(tenant).get(pk=membership.pk).role == "reviewer"


def test_leaving_a_tenant_revokes_the_persons_keys_there_only(tenant, other_tenant):
    person = UserFactory()
    membership = membership_create(tenant=tenant, user=person, role="admin")
    membership_create(tenant=other_tenant, user=person, role="admin")
    here, _ = api_key_create(tenant=tenant, role="auditor", name="here", user=person, actor=person)
    there, _ = api_key_create(tenant=other_tenant, role="auditor", name="there", user=person, actor=person)

    membership_delete(membership=membership)

    assert ApiKey.objects.for_tenant(tenant).get(pk=here.pk).revoked_at is not None
    assert ApiKey.objects.for_tenant(other_tenant).get(pk=there.pk).revoked_at is None
    assert Membership.objects.for_tenant(other_tenant).filter(user=person).exists()


def test_a_downgrade_revokes_only_the_keys_the_new_role_does_not_allow(tenant):
    person = UserFactory()
    membership = membership_create(tenant=tenant, user=person, role="admin")
    auditor_key, _ = api_key_create(tenant=tenant, role="auditor", name="a", user=person, actor=person)
    admin_key, _ = api_key_create(tenant=tenant, role="admin", name="b", user=person, actor=person)

    membership_update(membership=membership, role="auditor", reviewer_level=1, skills=[])

    assert ApiKey.objects.for_tenant(tenant).get(pk=auditor_key.pk).revoked_at is None
    assert ApiKey.objects.for_tenant(tenant).get(pk=admin_key.pk).revoked_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_membership_deleted_while_another_admin_edits_it_takes_its_rows_in_the_same_order(tenant):
    """membership_update saves the membership, then the tenant's row; membership_delete took the
    tenant's row (and the chain's, revoking the person's keys) before the membership: two admins at
    once waited for each other. The delete locks the membership first now."""
    from tenants.services import PLATFORM_OPERATOR
    from tests.concurrency import other_transaction

    person = UserFactory()
    membership = membership_create(tenant=tenant, user=person, role="reviewer")
    api_key_create(tenant=tenant, role="reviewer", name="k", user=person, actor=PLATFORM_OPERATOR)
    edit = [("UPDATE tenants_membership SET reviewer_level = 2 WHERE id = %s", [membership.pk])]  # its save
    config = [("UPDATE tenants_tenant SET config_token = gen_random_uuid() WHERE id = %s", [tenant.pk])]  # then this
    with other_transaction(now=edit, then=config):
        membership_delete(membership=membership, actor=UserFactory())
    assert not Membership.objects.for_tenant(tenant).filter(pk=membership.pk).exists()
