"""Where one part of the quality side reads another's figures: a calibration item's gold answer,
and a reviewer's accuracy on gold and agreement with peers in the analytics."""

from datetime import timedelta

import pytest
from django.utils import timezone

from quality.analytics import gold_accuracy, peer_agreement
from quality.selectors import gold_answer
from reviews.models import GoldTask
from tests.quality.test_golden_sets_api import lead  # noqa: F401 (a fixture: a quality lead with a golden set)
from tests.reviews.conftest import GOOD_SCORES, claim, review, reviewer, submit

pytestmark = pytest.mark.django_db


def test_an_output_promoted_to_gold_shows_its_expected_answer(tenant, workflow, lead):  # noqa: F811
    alice = reviewer(tenant, 1, "alice")
    output = submit(workflow, 1, "medium-app")
    plain = submit(workflow, 2, "medium-app")
    task = claim(alice).json()
    review(alice, task["id"], decision="correct", corrected_output="Better.", scores=GOOD_SCORES)
    promoted = lead.post(f"/api/v1/golden-sets/{lead.golden_set}/items", {"output_id": output["id"]}, format="json")
    assert promoted.status_code == 201, promoted.content

    answer = gold_answer(tenant=tenant, output_id=output["id"])

    assert (answer["decision"], answer["scores"]) == ("correct", GOOD_SCORES)
    assert gold_answer(tenant=tenant, output_id=plain["id"]) is None


def test_accuracy_on_gold_counts_the_reviewers_answered_gold_in_the_period(tenant, workflow, lead):  # noqa: F811
    alice = reviewer(tenant, 1, "alice")
    output = submit(workflow, 1, "medium-app")
    task = claim(alice).json()
    review(alice, task["id"], decision="approve", scores=GOOD_SCORES)
    item = lead.post(f"/api/v1/golden-sets/{lead.golden_set}/items", {"output_id": output["id"]}, format="json")
    assert item.status_code == 201, item.content
    now = timezone.now()
    start, end = now - timedelta(days=1), now + timedelta(days=1)
    assert gold_accuracy(tenant=tenant, reviewer_id=alice.person.pk, start=start, end=end) is None

    from reviews.models import GoldItem, Queue, ReviewTask

    gold_item = GoldItem.objects.for_tenant(tenant).get()
    queue = Queue.objects.for_tenant(tenant).get(name="default")
    for correct in (True, True, False, None):  # None: planted, not answered yet
        task_row = ReviewTask.objects.for_tenant(tenant).create(
            output_id=output["id"], queue=queue, status="done", due_at=now
        )
        GoldTask.objects.for_tenant(tenant).create(
            task=task_row,
            user=alice.person,
            queue=queue,
            kind="live",
            item=gold_item,
            golden_set_version=1,
            correct=correct,
            answered_at=None if correct is None else now,
        )

    assert gold_accuracy(tenant=tenant, reviewer_id=alice.person.pk, start=start, end=end) == pytest.approx(2 / 3)
    assert gold_accuracy(tenant=tenant, reviewer_id=alice.person.pk, start=end, end=end + timedelta(days=1)) is None


def test_agreement_with_peers_is_none_without_overlap_reviews(tenant, workflow):
    alice = reviewer(tenant, 1, "alice")
    now = timezone.now()
    assert peer_agreement(tenant=tenant, reviewer_id=alice.person.pk, start=now - timedelta(days=1), end=now) is None
