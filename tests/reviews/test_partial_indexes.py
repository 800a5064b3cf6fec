"""The lookups the foreign-key indexes exist for still find their index on PostgreSQL, now that
the mostly-null ones are partial (``WHERE ... IS NOT NULL``) and review's output and tenant use
the indexes that lead with them: what removing a person or a rubric checks, and a review's
reads by output."""

import re
import uuid

import pytest
from django.db import connection

from reviews.models import Output, Review, ReviewTask

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

LOOKUPS = [
    # (model, the filter Django's deletion collector or the review sends, the index that answers it)
    (Output, {"decided_by__in": [1]}, "output_decided_by"),
    (ReviewTask, {"claimed_by__in": [1]}, "task_claimed_by"),
    (ReviewTask, {"rubric__in": [1, 2]}, "task_rubric"),
    (Review, {"rubric__in": [1]}, "review_rubric"),
    (Review, {"output_id": uuid.UUID(int=1)}, "review_one_per_output_and_reviewer"),
    (Review, {"tenant_id": 1, "created_at__gte": "2026-01-01T00:00:00Z"}, "review_tenant_created"),
]


@pytest.mark.parametrize(("model", "lookup", "index"), LOOKUPS, ids=[index for *_, index in LOOKUPS])
def test_the_lookup_reads_its_index(model, lookup, index):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # empty tables: else a scan is cheapest
    plan = model._base_manager.filter(**lookup).explain()
    assert re.search(rf"Scan (using|on) {index}\b", plan), plan  # an index scan or a bitmap one
