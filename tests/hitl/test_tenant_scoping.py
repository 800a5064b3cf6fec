"""The one scoping mechanism: tenant-owned queries must name their tenant."""

import uuid

import pytest

from hitl.models import UnscopedQueryError, uuid7
from reviews.models import Output
from tenants.models import ApiKey, Membership
from tests.factories import UserFactory


@pytest.mark.parametrize("model", [Output, Membership, ApiKey])
@pytest.mark.parametrize("call", ["all", "filter", "count", "get", "create", "bulk_create"])
def test_unscoped_query_raises(db, model, call):
    with pytest.raises(UnscopedQueryError, match="for_tenant"):
        getattr(model.objects, call)(*([[]] if call == "bulk_create" else []))


def test_for_tenant_needs_a_saved_tenant(db):
    with pytest.raises(UnscopedQueryError):
        Output.objects.for_tenant(None)


def test_scoped_create_fills_the_tenant_and_reads_stay_inside(tenant, other_tenant):
    user = UserFactory()
    Membership.objects.for_tenant(tenant).create(user=user, role="reviewer")

    assert Membership.objects.for_tenant(tenant).get().tenant == tenant
    assert not Membership.objects.for_tenant(other_tenant).exists()


def test_scoped_write_refuses_a_row_of_another_tenant(tenant, other_tenant):
    with pytest.raises(UnscopedQueryError, match="another tenant"):
        Membership.objects.for_tenant(tenant).create(user=UserFactory(), role="viewer", tenant=other_tenant)
    with pytest.raises(UnscopedQueryError, match="another tenant"):
        Membership.objects.for_tenant(tenant).bulk_create(
            [Membership(user=UserFactory(), role="viewer", tenant=other_tenant)]
        )
    assert not Membership.unscoped.exists()


def test_empty_queryset_needs_no_tenant(db):
    assert list(Output.objects.none()) == []


def test_uuid7_is_version_7_and_time_ordered():
    ids = [uuid7() for _ in range(2000)]

    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in ids)
    assert len(set(ids)) == len(ids)
    # Ordered by millisecond: a later id never sorts before an earlier millisecond.
    millis = [value.int >> 80 for value in ids]
    assert millis == sorted(millis)


def test_uuid7_strictly_increases_within_a_process_even_in_one_millisecond():
    ids = [uuid7() for _ in range(10_000)]  # many share a millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {value.version for value in ids} == {7} and {value.variant for value in ids} == {uuid.RFC_4122}
