"""Overlap reviews that disagree go to adjudication by a higher-level reviewer (issue 13 point 4):
the adjudicator sees the reviews side by side, and their verdict is the output's decision."""

import pytest

from policies.defaults import DEFAULT_POLICY
from policies.services import policy_publish, rubric_publish
from reviews.decision import ScoredReview, adjudication_level, reviews_disagreement
from reviews.models import Output, ReviewTask, WebhookDelivery
from reviews.services.webhooks import webhook_endpoint_create
from tenants.models import AuditEvent
from tests.conftest import make_client
from tests.factories import output_payload
from tests.pages import signed_in
from tests.reviews.conftest import RUBRIC, claim, review, reviewer

SCORES = {"correct": True, "helpful": 4}


@pytest.fixture
def overlapped(tenant):
    """One tier, every output reviewed once and double-scored (overlap rate 1)."""
    rubric_publish(tenant=tenant, document=RUBRIC)
    tier = {**DEFAULT_POLICY["tiers"][0], "name": "low", "review_rate": 1.0, "overlap_rate": 1.0, "rubric": "quality"}
    tier.pop("escalation", None)
    policy_publish(tenant=tenant, document={"default_tier": "low", "tiers": [tier]})
    webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", secret="s" * 20)
    return make_client(tenant, "service")


def _submit(service, number=1) -> Output:
    response = service.post("/api/v1/outputs", output_payload(number), format="json")
    assert response.status_code == 201, response.json()
    return Output.unscoped.get(pk=response.json()["id"])


def _work_both(tenant, first_scores, second_scores, first="approve", second="approve"):
    a, b = reviewer(tenant, 1, "ann"), reviewer(tenant, 1, "bob")
    for person, decision, scores in ((a, first, first_scores), (b, second, second_scores)):
        task = claim(person).json()
        body = {"decision": decision, "scores": scores}
        if decision == "correct":
            body["corrected_output"] = "Better."
        assert review(person, task["id"], **body).status_code == 201
    return a, b


def test_disagreeing_overlap_reviews_get_an_adjudication_task_a_level_up(tenant, overlapped):
    output = _submit(overlapped)
    assert sorted(ReviewTask.unscoped.filter(output=output).values_list("purpose", flat=True)) == [
        "approval",
        "overlap",
    ]
    _work_both(tenant, SCORES, SCORES, first="approve", second="reject")

    output.refresh_from_db()
    task = ReviewTask.unscoped.get(output=output, purpose="adjudication")
    assert (task.level_required, task.status) == (2, "pending")
    assert "overlap reviews disagree: decisions approve vs reject" in task.escalation_reason
    assert "a level 2 reviewer adjudicates" in output.decision_reason
    event = AuditEvent.objects.for_tenant(tenant).filter(kind="task.reviewed").order_by("-seq").first()
    assert event.data["adjudication"]["task"] == str(task.pk)

    junior = reviewer(tenant, 1, "carl")
    assert claim(junior).status_code == 204  # below the level
    senior = reviewer(tenant, 2, "dora")
    claimed = claim(senior).json()
    assert claimed["purpose"] == "adjudication"
    assert [(r["reviewer"], r["decision"]) for r in claimed["adjudication"]] == [("ann", "approve"), ("bob", "reject")]
    page = signed_in(senior.person).get(f"/review/tasks/{claimed['id']}/").content.decode()
    assert "Adjudicate:" in page and 'id="adjudication-reviews"' in page and "bob" in page

    before = WebhookDelivery.unscoped.filter(output=output).count()
    response = review(senior, claimed["id"], decision="correct", corrected_output="Fixed answer.", scores=SCORES)
    assert response.status_code == 201

    output.refresh_from_db()
    assert (output.decision, output.final_output, output.decided_by_id) == (
        "corrected",
        "Fixed answer.",
        senior.person.pk,
    )
    assert "adjudicated: corrected" in output.decision_reason
    assert WebhookDelivery.unscoped.filter(output=output, event="output.decided").count() == before + 1
    adjudicated = AuditEvent.objects.for_tenant(tenant).get(kind="output.adjudicated")
    assert adjudicated.data["before"]["decision"] == "approved"
    assert adjudicated.data["decided"]["decision"] == "corrected"


def test_scores_within_the_tolerance_agree(tenant, overlapped):
    output = _submit(overlapped)
    _work_both(tenant, {"correct": True, "helpful": 4}, {"correct": True, "helpful": 3})

    assert not ReviewTask.unscoped.filter(output=output, purpose="adjudication").exists()
    output.refresh_from_db()
    assert output.decision == "approved"


def test_a_criterion_beyond_the_tolerance_disagrees(tenant, overlapped, settings):
    output = _submit(overlapped)
    _work_both(tenant, {"correct": True, "helpful": 5}, {"correct": True, "helpful": 2})

    task = ReviewTask.unscoped.get(output=output, purpose="adjudication")
    assert "helpful 2 vs 5 (tolerance 1)" in task.escalation_reason


def test_the_rule():
    criteria = RUBRIC["criteria"]
    same = [
        ScoredReview(1, "approve", {"correct": True, "notes": "a"}),
        ScoredReview(2, "approve", {"correct": True, "notes": "b"}),
    ]
    assert reviews_disagreement(reviews=same, criteria=criteria, tolerance=1) is None
    split = [
        ScoredReview(1, "approve", {"tone": "ok"}),
        ScoredReview(2, "escalate", {}),
        ScoredReview(3, "approve", {"tone": "rude"}),
    ]
    assert reviews_disagreement(reviews=split, criteria=criteria, tolerance=1) == "tone ok vs rude"
    assert adjudication_level(reviewer_levels=[1, 2]) == 3
    assert adjudication_level(reviewer_levels=[3, 3]) == 3
