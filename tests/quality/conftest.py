"""The quality tests share the review-workflow fixtures (a policy sampling everything, a rubric)."""

import pytest

from policies.models import Rubric
from policies.services import rubric_publish
from reviews.models import Queue, Review
from reviews.services import output_ingest_batch
from tests.factories import UserFactory, output_submission
from tests.reviews.conftest import (
    RUBRIC,
    workflow,  # noqa: F401 (a fixture)
)


@pytest.fixture
def rubric(tenant) -> Rubric:
    return rubric_publish(tenant=tenant, document=RUBRIC)[0]


def overlap_reviews(tenant, rubric, ratings: list[list[tuple[str, dict]]], *, people=None, start: int = 0):
    """One output per entry of ``ratings``; each (decision, scores) a review by the next person.

    Returns the people (the first reviews each output, the second the second, ...) and the outputs' ids.
    """
    width = max(len(unit) for unit in ratings)
    people = people or [UserFactory() for _ in range(width)]
    submissions = [output_submission(start + index) for index in range(len(ratings))]
    ids = [item.receipt["id"] for item in output_ingest_batch(tenant=tenant, submissions=submissions)]
    rows = []
    for output_id, unit in zip(ids, ratings, strict=True):
        for person, (decision, scores) in zip(people, unit, strict=False):
            rows.append(
                Review(
                    tenant=tenant,
                    output_id=output_id,
                    reviewer=person,
                    purpose="approval",
                    decision=decision,
                    scores=scores,
                    rubric_id=rubric.pk,
                    rubric_version=rubric.version,
                    shown={},
                )
            )
    Review.objects.for_tenant(tenant).bulk_create(rows)
    return people, ids


def default_queue(tenant) -> Queue:
    return Queue.objects.for_tenant(tenant).get(name="default")
