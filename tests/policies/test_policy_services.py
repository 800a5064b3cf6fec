"""Service details the console relies on: publishing from a known version, a rubric version's reason."""

import pytest

from hitl.errors import ConflictError
from policies.defaults import DEFAULT_POLICY
from policies.models import Policy, Rubric
from policies.services import policy_publish, rubric_publish
from tests.factories import UserFactory

RUBRIC = {"name": "quality", "criteria": [{"key": "ok", "label": "OK", "kind": "binary"}]}


def test_publishing_from_the_version_in_force_works_and_from_an_older_one_writes_nothing(tenant):
    assert policy_publish(tenant=tenant, document=DEFAULT_POLICY, expected_version=1).version == 2

    with pytest.raises(ConflictError) as refused:
        policy_publish(tenant=tenant, document=DEFAULT_POLICY, expected_version=1, reason="stale")

    assert refused.value.code == "stale_version" and "version 2 is in force now" in refused.value.message
    assert Policy.objects.for_tenant(tenant).get().version == 2
    assert not Policy.history.filter(tenant_id=tenant.pk, history_change_reason="stale").exists()


def test_a_rubric_version_keeps_who_published_it_and_why(tenant):
    person = UserFactory()
    rubric_publish(tenant=tenant, document=RUBRIC, user=person, reason="first cut")
    rubric_publish(tenant=tenant, document=RUBRIC, user=person)

    records = Rubric.objects.for_tenant(tenant).get().history.order_by("version")
    assert [(r.version, r.history_user, r.history_change_reason) for r in records] == [
        (1, person, "first cut"),
        (2, person, None),
    ]
