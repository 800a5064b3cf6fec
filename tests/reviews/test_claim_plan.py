"""The claim's plan on PostgreSQL: the two NOT EXISTS probe the one candidate task through an
index, whatever the person did before, instead of reading all their reviews or claims first."""

import json

import pytest
from django.db import connection
from django.utils import timezone

from reviews.models import Queue
from reviews.services.claims import _claim_sql
from tenants.services import membership_create
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_the_claim_probes_the_candidate_not_the_persons_history(tenant):
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    now = timezone.now()
    params = [person.pk, now, now, tenant.pk, [queue.pk], 3, person.pk, person.pk]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_reviewtask, reviews_review")
        cursor.execute("EXPLAIN (FORMAT JSON) " + _claim_sql("postgresql", 1), params)
        plan = cursor.fetchone()[0]
    nodes = list(_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]))

    assert not [node for node in nodes if node.get("Join Type") in ("Anti", "Semi")]
    probes = [node for node in nodes if node.get("Parent Relationship") == "SubPlan"]
    assert {node["Relation Name"] for node in probes} == {"reviews_review", "reviews_reviewtask"}
    # Each probe names the candidate's output: a lookup of one key, not a scan of the person's rows.
    for node in probes:
        assert "t.output_id" in node.get("Index Cond", "") + node.get("Filter", "")
