"""The life of an output through each tier: claim, review, escalate, approve, decide."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from policies.defaults import DEFAULT_POLICY
from policies.models import Policy
from policies.services import policy_publish, rubric_publish
from reviews.models import Output, Review, ReviewTask
from reviews.services.claims import tasks_release_expired
from reviews.services.queues import queue_create, queue_grant
from tenants.services import PLATFORM_OPERATOR, membership_create
from tests.conftest import make_client
from tests.factories import UserFactory, output_payload
from tests.reviews.conftest import GOOD_SCORES, RUBRIC, claim, review, reviewer, submit


def test_medium_parallel_output_is_delivered_then_approved(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    assert (output["delivery"], output["status"], output["review_required"]) == ("deliver", "pending_review", True)
    rita = reviewer(tenant, 1, "rita")

    task = claim(rita).json()
    assert task["output"]["id"] == output["id"]
    assert task["output"]["trace"] == output_payload(1)["trace"]
    assert task["rubric"]["name"] == "quality" and task["rubric"]["version"] == 1
    assert task["lease_expires_at"]
    result = review(rita, task["id"], decision="approve", scores=GOOD_SCORES, time_spent_seconds=42)

    assert result.status_code == 201, result.content
    assert result.json()["decided_now"] is True
    detail = workflow["service"].get(f"/api/v1/outputs/{output['id']}").json()
    assert (detail["status"], detail["decision"], detail["final_output"], detail["decided_by"]) == (
        "approved",
        "approved",
        "Answer 1.",
        "rita",
    )
    stored = Review.objects.for_tenant(tenant).get()
    assert stored.rubric_version == 1 and stored.time_spent_seconds == 42
    assert stored.shown["content_hash"] == Output.objects.for_tenant(tenant).get(pk=output["id"]).content_hash
    assert claim(rita).status_code == 204


def test_high_sequential_output_is_held_until_a_level_two_reviewer_approves(tenant, workflow):
    output = submit(workflow, 1, "high-app")
    assert output["delivery"] == "hold"
    junior, senior = reviewer(tenant, 1, "junior"), reviewer(tenant, 2, "senior")

    assert claim(junior).status_code == 204  # high needs level 2
    task = claim(senior).json()
    review(senior, task["id"], decision="approve", scores=GOOD_SCORES)

    detail = workflow["service"].get(f"/api/v1/outputs/{output['id']}").json()
    assert (detail["status"], detail["delivery"]) == ("approved", "deliver")


def test_critical_needs_two_distinct_reviewers_at_levels_two_and_three(tenant, workflow):
    output = submit(workflow, 1, "critical-app")
    assert ReviewTask.objects.for_tenant(tenant).filter(output_id=output["id"]).count() == 2
    two, three = reviewer(tenant, 2, "two"), reviewer(tenant, 3, "three")

    first = claim(two).json()
    assert first["level_required"] == 2
    assert review(two, first["id"], decision="approve", scores=GOOD_SCORES).json()["decided_now"] is False
    assert claim(two).status_code == 204  # never a second task of an output they reviewed
    second = claim(three).json()
    assert second["level_required"] == 3
    result = review(three, second["id"], decision="approve", scores=GOOD_SCORES).json()

    assert result["decided_now"] is True
    assert (result["output"]["decision"], result["output"]["delivery"]) == ("approved", "deliver")


def test_a_reject_after_an_approval_decides_reject(tenant, workflow):
    output = submit(workflow, 1, "critical-app")
    two, three = reviewer(tenant, 3, "two"), reviewer(tenant, 3, "three")
    review(two, claim(two).json()["id"], decision="approve", scores=GOOD_SCORES)

    result = review(three, claim(three).json()["id"], decision="reject", scores={"correct": False, "helpful": 1}).json()

    assert (result["output"]["decision"], result["output"]["delivery"]) == ("rejected", "block")
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).final_output is None


def test_a_reject_decides_at_once_and_cancels_the_other_approval(tenant, workflow):
    output = submit(workflow, 1, "critical-app")
    three = reviewer(tenant, 3, "three")

    result = review(three, claim(three).json()["id"], decision="reject", scores={"correct": False, "helpful": 1})

    assert result.json()["output"]["decision"] == "rejected"
    statuses = sorted(
        ReviewTask.objects.for_tenant(tenant).filter(output_id=output["id"]).values_list("status", flat=True)
    )
    assert statuses == ["cancelled", "done"]
    assert claim(reviewer(tenant, 3, "other")).status_code == 204


def test_correct_needs_a_correction_and_delivers_it(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()

    missing = review(rita, task["id"], decision="correct", scores=GOOD_SCORES)
    assert missing.status_code == 422 and "corrected_output" in missing.json()["fields"]
    result = review(rita, task["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Better answer.")

    assert result.json()["output"]["decision"] == "corrected"
    detail = workflow["service"].get(f"/api/v1/outputs/{output['id']}").json()
    assert (detail["status"], detail["final_output"]) == ("corrected", "Better answer.")


def test_escalate_moves_the_task_up_a_level_then_a_specialist_decides(tenant, workflow):
    output = submit(workflow, 1, "medium-app")
    junior, peer, senior = reviewer(tenant, 1, "junior"), reviewer(tenant, 1, "peer"), reviewer(tenant, 2, "senior")
    task = claim(junior).json()

    no_reason = review(junior, task["id"], decision="escalate")
    assert no_reason.status_code == 422 and "comment" in no_reason.json()["fields"]
    escalated = review(junior, task["id"], decision="escalate", comment="Looks like legal advice.")
    assert escalated.status_code == 201 and escalated.json()["decided_now"] is False

    assert claim(peer).status_code == 204  # level 1 may not take it now
    again = claim(senior).json()
    assert (again["id"], again["level_required"], again["escalation_reason"]) == (
        task["id"],
        2,
        "Looks like legal advice.",
    )
    review(senior, again["id"], decision="approve", scores=GOOD_SCORES)
    assert workflow["service"].get(f"/api/v1/outputs/{output['id']}").json()["decision"] == "approved"


def test_a_tier_without_escalation_refuses_it_and_the_task_stays_leased(tenant, workflow):
    output = submit(workflow, 1, "low-app")  # the low tier says escalation: false
    junior = reviewer(tenant, 1, "junior")
    task = claim(junior).json()

    refused = review(junior, task["id"], decision="escalate", comment="Not sure.")

    assert (refused.status_code, refused.json()["code"]) == (400, "escalation_not_allowed")
    assert "tier 'low'" in refused.json()["fields"]["decision"][0]
    stored = ReviewTask.objects.for_tenant(tenant).get(pk=task["id"])
    assert (stored.status, stored.level_required, stored.escalation_reason) == ("claimed", 1, "")
    assert not Review.objects.for_tenant(tenant).exists()
    approved = review(junior, task["id"], decision="approve", scores=GOOD_SCORES)
    assert approved.json()["output"]["decision"] == "approved"
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).decision == "approved"


def test_escalation_follows_the_policy_version_that_classified_the_output(tenant, workflow):
    submit(workflow, 1, "medium-app")  # classified while medium allows escalation
    policy = Policy.objects.for_tenant(tenant).get().document
    for tier in policy["tiers"]:
        tier["escalation"] = False
    policy_publish(tenant=tenant, document=policy)
    submit(workflow, 2, "medium-app")  # classified after it was switched off
    junior = reviewer(tenant, 1, "junior")
    first, second = claim(junior).json(), claim(junior).json()
    assert (first["output"]["external_id"], second["output"]["external_id"]) == ("ext-1", "ext-2")

    assert review(junior, first["id"], decision="escalate", comment="Legal?").status_code == 201
    refused = review(junior, second["id"], decision="escalate", comment="Legal?")
    assert (refused.status_code, refused.json()["code"]) == (400, "escalation_not_allowed")


def test_scores_are_checked_against_the_rubric_version_of_the_task(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()
    # A later rubric version adds a required criterion; the task keeps version 1.
    rubric_publish(
        tenant=tenant,
        document={**RUBRIC, "criteria": [*RUBRIC["criteria"], {"key": "new", "label": "N", "kind": "binary"}]},
    )

    cases = [
        ({"helpful": 4}, "scores.correct"),
        ({"correct": "yes", "helpful": 4}, "scores.correct"),
        ({"correct": True, "helpful": 6}, "scores.helpful"),
        ({"correct": True, "helpful": True}, "scores.helpful"),
        ({"correct": True, "helpful": 4, "tone": "sarcastic"}, "scores.tone"),
        ({"correct": True, "helpful": 4, "mood": 1}, "scores.mood"),
    ]
    for scores, field in cases:
        response = review(rita, task["id"], decision="approve", scores=scores)
        assert response.status_code == 422, scores  # the rubric, not the schema, says what scores are
        assert field in response.json()["fields"], response.json()
    assert review(rita, task["id"], decision="approve", scores=GOOD_SCORES).status_code == 201


def test_only_the_lease_holder_reviews_and_an_expired_lease_is_refused(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 1, "sam")
    task = claim(rita).json()

    assert review(sam, task["id"], decision="approve", scores=GOOD_SCORES).json()["code"] == "not_lease_holder"
    ReviewTask.objects.for_tenant(tenant).filter(pk=task["id"]).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    late = review(rita, task["id"], decision="approve", scores=GOOD_SCORES)
    assert (late.status_code, late.json()["code"]) == (409, "lease_expired")

    assert tasks_release_expired() == 1  # the periodic task (and, with no broker, every claim) sweeps
    assert tasks_release_expired() == 0
    assert claim(sam).json()["id"] == task["id"]


def test_without_a_broker_a_claim_itself_returns_expired_leases(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 1, "sam")
    task = claim(rita).json()
    assert claim(sam).status_code == 204  # leased to rita
    ReviewTask.objects.for_tenant(tenant).filter(pk=task["id"]).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert claim(sam).json()["id"] == task["id"]


def test_escalation_always_goes_above_the_one_escalating(tenant, workflow):
    submit(workflow, 1, "medium-app")  # a level-1 task
    senior, peer, top = reviewer(tenant, 2, "senior"), reviewer(tenant, 2, "peer"), reviewer(tenant, 3, "top")
    task = claim(senior).json()

    review(senior, task["id"], decision="escalate", comment="Needs a specialist.")

    assert claim(peer).status_code == 204  # level 3 now, not 2
    assert claim(top).json()["level_required"] == 3
    too_high = review(top, task["id"], decision="escalate", comment="Even higher?")
    assert (too_high.status_code, too_high.json()["code"]) == (422, "cannot_escalate")


def test_a_reviewer_who_lost_the_queue_cannot_finish_a_leased_task(tenant, workflow):
    from reviews.models import Queue
    from reviews.services.queues import queue_revoke

    submit(workflow, 1, "medium-app")
    rita = reviewer(tenant, 1, "rita")
    task = claim(rita).json()
    queue_revoke(queue=Queue.objects.for_tenant(tenant).get(name="default"), user=rita.person, actor=PLATFORM_OPERATOR)

    response = review(rita, task["id"], decision="approve", scores=GOOD_SCORES)

    assert response.status_code == 403
    assert not Review.objects.for_tenant(tenant).exists()


def test_thumbs_down_does_not_reopen_a_blocked_output(tenant, workflow):
    from policies.services import application_override_set

    application_override_set(tenant=tenant, name="quiet-app", mode="block")
    output = submit(workflow, 1, "quiet-app")
    assert output["delivery"] == "block"

    response = workflow["service"].post(f"/api/v1/outputs/{output['id']}/feedback", {"rating": "down"}, format="json")

    assert response.json()["review_task_created"] is False
    assert not ReviewTask.objects.for_tenant(tenant).exists()


def test_sampled_outputs_always_get_a_task_even_when_no_queue_is_catch_all(tenant, workflow):
    from reviews.models import Queue
    from reviews.services.queues import queue_update

    queue_update(queue=Queue.objects.for_tenant(tenant).get(name="default"), tiers=["critical"])
    output = submit(workflow, 1, "medium-app")

    assert ReviewTask.objects.for_tenant(tenant).get(output_id=output["id"]).queue.name == "default"


def test_release_gives_the_task_back(tenant, workflow):
    submit(workflow, 1, "medium-app")
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 1, "sam")
    task = claim(rita).json()

    assert rita.post(f"/api/v1/tasks/{task['id']}/release").status_code == 200
    assert sam.post(f"/api/v1/tasks/{task['id']}/release").json()["code"] == "not_lease_holder"
    assert claim(sam).json()["id"] == task["id"]


def test_most_urgent_first_then_priority(tenant, workflow):
    submit(workflow, 1, "low-app")  # due in 24 h
    urgent = submit(workflow, 2, "critical-app")  # due in 1 h
    three = reviewer(tenant, 3, "three")

    assert claim(three).json()["output"]["id"] == urgent["id"]


def test_queues_need_permission_skills_and_level(tenant, workflow):
    legal = queue_create(
        tenant=tenant, name="legal", applications=["medium-app"], required_skills=["legal"], priority=5
    )
    output = submit(workflow, 1, "medium-app")
    assert ReviewTask.objects.for_tenant(tenant).get(output_id=output["id"]).queue_id == legal.pk
    plain = reviewer(tenant, 1, "plain")  # default queue only
    lawyer_person = UserFactory(username="lawyer")
    membership_create(tenant=tenant, user=lawyer_person, role="reviewer", skills=["legal"])
    lawyer = make_client(tenant, "reviewer", user=lawyer_person)
    unskilled_person = UserFactory(username="unskilled")
    membership_create(tenant=tenant, user=unskilled_person, role="reviewer")
    unskilled = make_client(tenant, "reviewer", user=unskilled_person)
    queue_grant(queue=legal, user=lawyer_person, actor=PLATFORM_OPERATOR)
    queue_grant(queue=legal, user=unskilled_person, actor=PLATFORM_OPERATOR)

    assert claim(plain).status_code == 204  # no permission on "legal"
    assert claim(unskilled).status_code == 204  # permission, but not the skill
    assert claim(lawyer, queue="default").status_code == 204  # asked for another queue
    assert claim(lawyer, queue="legal").json()["queue"] == "legal"


def test_unsampled_outputs_are_auto_approved_with_no_task(tenant, workflow):
    output = submit(workflow, 1, "quiet-app")

    assert (output["status"], output["review_required"]) == ("auto_approved", False)
    assert not ReviewTask.objects.for_tenant(tenant).exists()


def test_thumbs_down_on_an_unreviewed_output_sends_it_to_a_person(tenant, workflow):
    output = submit(workflow, 1, "quiet-app")
    service = workflow["service"]

    up = service.post(f"/api/v1/outputs/{output['id']}/feedback", {"rating": "up"}, format="json")
    down = service.post(
        f"/api/v1/outputs/{output['id']}/feedback", {"rating": "down", "comment": "wrong"}, format="json"
    )
    again = service.post(f"/api/v1/outputs/{output['id']}/feedback", {"rating": "down"}, format="json")

    assert (
        up.json()["review_task_created"],
        down.json()["review_task_created"],
        again.json()["review_task_created"],
    ) == (
        False,
        True,
        False,
    )
    task = ReviewTask.objects.for_tenant(tenant).get()
    assert task.purpose == "user_feedback"
    rita = reviewer(tenant, 1, "rita")
    claimed = claim(rita).json()
    assert (claimed["purpose"], claimed["rubric"]) == ("user_feedback", None)  # the quiet tier has no rubric
    assert "scores" in review(rita, claimed["id"], decision="reject", scores={"correct": False}).json()["fields"]
    assert review(rita, claimed["id"], decision="reject", comment="Wrong, as the user said.").status_code == 201
    assert service.get(f"/api/v1/outputs/{output['id']}").json()["decision"] == "rejected"


def test_feedback_is_validated(workflow):
    output = submit(workflow, 1, "quiet-app")
    response = workflow["service"].post(f"/api/v1/outputs/{output['id']}/feedback", {"rating": "meh"}, format="json")
    assert response.status_code == 400 and "rating" in response.json()["fields"]


def test_overlap_review_does_not_change_the_decision(tenant, workflow):
    tiers = copy.deepcopy(DEFAULT_POLICY["tiers"])
    for tier in tiers:
        tier.update(review_rate=1.0, overlap_rate=1.0)
    policy_publish(tenant=tenant, document={**DEFAULT_POLICY, "tiers": tiers, "rules": []})
    output = submit(workflow, 1, "medium-app")
    purposes = sorted(
        ReviewTask.objects.for_tenant(tenant).filter(output_id=output["id"]).values_list("purpose", flat=True)
    )
    assert purposes == ["approval", "overlap"]
    rita, sam = reviewer(tenant, 1, "rita"), reviewer(tenant, 1, "sam")

    first = claim(rita).json()
    first_result = review(rita, first["id"], decision="approve" if first["purpose"] == "approval" else "reject").json()
    second = claim(sam).json()
    second_result = review(
        sam, second["id"], decision="approve" if second["purpose"] == "approval" else "reject"
    ).json()

    decided = [r for r in (first_result, second_result) if r["decided_now"]]
    assert len(decided) == 1
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).decision == "approved"
    assert Review.objects.for_tenant(tenant).filter(purpose="overlap", decision="reject").count() == 1


def test_a_key_of_no_person_cannot_claim(tenant, workflow):
    from tenants.services import api_key_create

    _, raw = api_key_create(tenant=tenant, role="admin", name="robot", actor=PLATFORM_OPERATOR)
    from rest_framework.test import APIClient

    robot = APIClient()
    robot.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = claim(robot)
    assert response.status_code == 403
    assert "no person" in response.json()["message"]


def test_critical_with_corrections_delivers_the_last_correction(tenant, workflow):
    output = submit(workflow, 1, "critical-app")
    two, three = reviewer(tenant, 3, "two"), reviewer(tenant, 3, "three")

    review(two, claim(two).json()["id"], decision="correct", scores=GOOD_SCORES, corrected_output="First fix.")
    result = review(three, claim(three).json()["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Final.")

    assert result.json()["output"]["decision"] == "corrected"
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).final_output == "Final."


def test_an_approval_after_a_correction_still_delivers_the_correction(tenant, workflow):
    output = submit(workflow, 1, "critical-app")
    two, three = reviewer(tenant, 3, "two"), reviewer(tenant, 3, "three")

    review(two, claim(two).json()["id"], decision="correct", scores=GOOD_SCORES, corrected_output="Fixed.")
    review(three, claim(three).json()["id"], decision="approve", scores=GOOD_SCORES)

    stored = Output.objects.for_tenant(tenant).get(pk=output["id"])
    assert (stored.decision, stored.final_output) == ("corrected", "Fixed.")


def _reviewed_with_the_other_task_forced_on_the_same_person(tenant, workflow):
    """A critical output's first approval reviewed by a level-3 person, then its other approval
    task claimed by that same person (claims never do this): ``(output, person, other task)``."""
    output = submit(workflow, 1, "critical-app")
    three = reviewer(tenant, 3, "three")
    review(three, claim(three).json()["id"], decision="approve", scores=GOOD_SCORES)
    other = ReviewTask.objects.for_tenant(tenant).get(output_id=output["id"], status="pending")
    ReviewTask.objects.for_tenant(tenant).filter(pk=other.pk).update(
        status="claimed", claimed_by=three.person, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    return output, three, other


def test_a_second_review_of_the_same_output_by_one_person_is_409_and_writes_nothing(tenant, workflow):
    output, three, other = _reviewed_with_the_other_task_forced_on_the_same_person(tenant, workflow)

    response = review(three, other.pk, decision="approve", scores=GOOD_SCORES)

    assert (response.status_code, response.json()["code"]) == (409, "already_reviewed")
    assert Review.objects.for_tenant(tenant).count() == 1
    assert ReviewTask.objects.for_tenant(tenant).get(pk=other.pk).status == "claimed"
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).decision == ""


def test_the_database_refuses_one_person_two_claimed_tasks_of_one_output(tenant, workflow):
    """The invariant behind concurrent claims (tests/reviews/test_claim_concurrency.py) is a constraint."""
    from django.db import IntegrityError, transaction

    output = submit(workflow, 1, "critical-app")
    three = reviewer(tenant, 3, "three")
    assert claim(three).status_code == 200
    other = ReviewTask.objects.for_tenant(tenant).get(output_id=output["id"], status="pending")

    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewTask.objects.for_tenant(tenant).filter(pk=other.pk).update(
            status="claimed", claimed_by=three.person, lease_expires_at=timezone.now() + timedelta(minutes=5)
        )
    assert claim(three).status_code == 204  # and the claim itself never tries
    assert claim(reviewer(tenant, 3, "another")).json()["id"] == str(other.pk)


def test_an_approval_on_the_common_path_runs_a_fixed_number_of_queries(tenant, workflow, assert_work_queries):
    from django.db import connection

    from reviews.routing import routing_table
    from reviews.services.claims import reviewer_for
    from reviews.services.review import review_submit

    submit(workflow, 1, "medium-app")  # one approval task, with a rubric
    rita = reviewer(tenant, 1, "rita")
    task_id = claim(rita).json()["id"]
    tenant.refresh_from_db()
    reviewer_for(tenant=tenant, user=rita.person)  # warm, as in a running server:
    routing_table(tenant=tenant)  # both are cached per configuration token

    # The rubric version's criteria come from the cache (the claim read them). PostgreSQL:
    # the task and its output locked and read by one statement, the rows the rule reads by
    # the next (the other approvals, earlier corrections, whether a judge failed the output:
    # signals that disagree go a level up), both in one round trip; then one statement
    # inserting the review, marking the task done and writing the decision (reviews.decision
    # decides it), which in production goes with the COMMIT. The portable path (SQLite) runs
    # the reads and the writes as five. Then the audit event of the review and its decision.
    from tests.conftest import AUDIT_APPEND_QUERIES

    expected = (3 if connection.vendor == "postgresql" else 6) + AUDIT_APPEND_QUERIES
    with assert_work_queries(expected):
        outcome = review_submit(
            tenant=tenant, user=rita.person, task_id=task_id, decision="approve", scores=GOOD_SCORES
        )

    assert outcome.decided_now and outcome.output.decision == "approved"
    assert ReviewTask.objects.for_tenant(tenant).get(pk=task_id).status == "done"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_review_refused_at_the_commit_is_409_and_writes_nothing_either(tenant, workflow, monkeypatch):
    """Committed for real, the review's row goes with the COMMIT on PostgreSQL
    (reviews.services.review): the duplicate fails the commit, answered as before it."""
    from hitl.postgres.base import DatabaseWrapper
    from tenants.audit import audit_verify
    from tenants.models import AuditEvent

    handed = []
    hand = DatabaseWrapper.hitl_execute_at_commit

    def spy(self, sql, params, **options):
        taken = hand(self, sql, params, **options)
        handed.append((sql.split("INSERT INTO")[1].split()[0] if "INSERT INTO" in sql else "", taken))
        return taken

    monkeypatch.setattr(DatabaseWrapper, "hitl_execute_at_commit", spy)

    output, three, other = _reviewed_with_the_other_task_forced_on_the_same_person(tenant, workflow)
    events = AuditEvent.objects.for_tenant(tenant).count()

    response = review(three, other.pk, decision="approve", scores=GOOD_SCORES)

    assert (response.status_code, response.json()["code"]) == (409, "already_reviewed")
    assert ('"reviews_review"', True) in handed  # the row went with the COMMIT
    assert Review.objects.for_tenant(tenant).count() == 1
    assert ReviewTask.objects.for_tenant(tenant).get(pk=other.pk).status == "claimed"
    assert Output.objects.for_tenant(tenant).get(pk=output["id"]).decision == ""
    assert AuditEvent.objects.for_tenant(tenant).count() == events  # the review's event went with it
    assert audit_verify(tenant).ok
