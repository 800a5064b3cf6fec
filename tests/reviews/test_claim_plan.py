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
    # a personal (gold) task first, then the shared queue: reviews.services.claims.task_claim's order
    params = [person.pk, now, now, person.pk, tenant.pk, [queue.pk], tenant.pk, [queue.pk], 3, person.pk, person.pk]
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


def test_a_queue_requiring_certification_reads_the_certifications_once(tenant):
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    now = timezone.now()
    params = [person.pk, now, now, person.pk, tenant.pk, [queue.pk], tenant.pk, [queue.pk], 3]
    params += [[queue.pk], tenant.pk, person.pk, [queue.pk], now, now, person.pk, person.pk]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviews_reviewtask, reviews_review, reviews_certification")
        cursor.execute("EXPLAIN (FORMAT JSON) " + _claim_sql("postgresql", 1, gated_count=1), params)
        plan = cursor.fetchone()[0]
    nodes = list(_nodes((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]))

    assert not [node for node in nodes if node.get("Join Type") in ("Anti", "Semi")]
    certification = [node for node in nodes if node.get("Relation Name") == "reviews_certification"]
    assert len(certification) == 1
    # Not correlated with the candidate task: read once a statement (an InitPlan or a hashed SubPlan).
    assert "t." not in certification[0].get("Index Cond", "") + certification[0].get("Filter", "")
    probes = [node for node in nodes if node.get("Parent Relationship") == "SubPlan"]
    assert {"reviews_review", "reviews_reviewtask"} <= {node.get("Relation Name") for node in probes}


def test_the_update_finds_the_chosen_task_by_its_primary_key(tenant):
    """Under row-level security the UPDATE must compare ``id`` with a plain parameter: with
    ``id = COALESCE(...)`` it read every task of the table (455 ms a claim at 1,000,000)."""
    from django.db import transaction

    queue = Queue.objects.for_tenant(tenant).get(name="default")
    person = UserFactory()
    membership_create(tenant=tenant, user=person, role="reviewer", reviewer_level=3)
    now = timezone.now()
    params = [person.pk, now, now, person.pk, tenant.pk, [queue.pk], tenant.pk, [queue.pk], 3, person.pk, person.pk]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a scan of the table only where no index can serve
        cursor.execute("EXPLAIN (FORMAT JSON) " + _claim_sql("postgresql", 1), params)
        plan = cursor.fetchone()[0]
    top = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    assert top["Node Type"] == "ModifyTable"
    target = [node for node in top["Plans"] if node.get("Parent Relationship") == "Outer"]
    assert len(target) == 1 and target[0]["Node Type"] in ("Index Scan", "Index Only Scan"), target
    assert target[0]["Index Cond"].startswith("(id = ")
