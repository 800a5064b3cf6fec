"""Signals that disagree go to a higher-level reviewer (issue 14, point 2; seed 003): a person
approving what a judge failed, and an end user's thumbs-down on what the judges passed."""

import pytest

from policies.services import judge_create, policy_publish
from reviews.models import Output, ReviewTask
from tests.conftest import make_client
from tests.factories import output_payload
from tests.pages import signed_in
from tests.reviews.conftest import claim, review, reviewer

POLICY = {
    "default_tier": "held",
    "tiers": [{"name": "held", "review_rate": 0.0, "mode": "sequential", "sla_minutes": 120}],
}
CARD = "Your card 4242 4242 4242 4242 is on file."


@pytest.fixture
def service(tenant):
    policy_publish(tenant=tenant, document=POLICY)
    judge_create(tenant=tenant, data={"name": "pii", "kind": "pii"})
    return make_client(tenant, "service")


def submit(service, capture, number, output):
    with capture(execute=True):  # the judges run on commit
        response = service.post("/api/v1/outputs", output_payload(number, output=output), format="json")
    assert response.status_code == 201, response.json()
    return Output.unscoped.get(pk=response.json()["id"])


def tasks(output):
    return list(ReviewTask.unscoped.filter(output=output).order_by("created_at"))


def test_a_person_approving_what_a_judge_failed_waits_for_a_reviewer_a_level_up(
    tenant, service, django_capture_on_commit_callbacks
):
    output = submit(service, django_capture_on_commit_callbacks, 1, CARD)
    junior, senior = reviewer(tenant, 1, "junior"), reviewer(tenant, 2, "senior")
    first = claim(junior).json()

    assert review(junior, first["id"], decision="approve").status_code == 201

    output.refresh_from_db()
    assert (output.decision, output.delivery) == ("", "hold")  # not decided: the judge said otherwise
    second = tasks(output)[1]
    assert (second.purpose, second.level_required, second.status) == ("conflict", 2, "pending")
    assert "judge pii failed, a level 1 reviewer approved; a level 2 reviewer decides" in second.escalation_reason
    assert "signals disagree" in output.decision_reason
    assert claim(junior).status_code == 204  # below the level, and already reviewed it

    looked = claim(senior).json()
    assert (looked["id"], looked["purpose"]) == (str(second.pk), "conflict")
    page = signed_in(senior.person).get(f"/review/tasks/{looked['id']}/").content.decode()
    assert "Second look:" in page and "judge pii failed" in page  # the workbench says why
    assert review(senior, looked["id"], decision="approve").status_code == 201
    output.refresh_from_db()
    assert (output.decision, output.delivery, output.decided_by_id) == ("approved", "deliver", senior.person.pk)
    assert len(tasks(output)) == 2  # one second look, not one per approval


def test_a_correction_of_what_a_judge_failed_also_gets_the_second_look(
    tenant, service, django_capture_on_commit_callbacks
):
    output = submit(service, django_capture_on_commit_callbacks, 1, CARD)
    junior = reviewer(tenant, 1, "junior")
    task = claim(junior).json()
    review(junior, task["id"], decision="correct", corrected_output="Your card is on file.")

    output.refresh_from_db()
    assert output.decision == "" and tasks(output)[1].purpose == "conflict"


def test_a_reject_agrees_with_the_judge_and_decides_at_once(tenant, service, django_capture_on_commit_callbacks):
    output = submit(service, django_capture_on_commit_callbacks, 1, CARD)
    junior = reviewer(tenant, 1, "junior")
    review(junior, claim(junior).json()["id"], decision="reject")

    output.refresh_from_db()
    assert (output.decision, len(tasks(output))) == ("rejected", 1)


def test_nobody_ranks_above_a_specialist_so_their_approval_decides(tenant, service, django_capture_on_commit_callbacks):
    output = submit(service, django_capture_on_commit_callbacks, 1, CARD)
    specialist = reviewer(tenant, 3, "spec")
    review(specialist, claim(specialist).json()["id"], decision="approve")

    output.refresh_from_db()
    assert (output.decision, len(tasks(output))) == ("approved", 1)


def test_a_thumbs_down_on_what_the_judges_passed_goes_a_level_up(tenant, service, django_capture_on_commit_callbacks):
    output = submit(service, django_capture_on_commit_callbacks, 1, "All good.")
    assert output.status == "auto_approved" and output.judgements.get().result == "pass"

    down = service.post(f"/api/v1/outputs/{output.pk}/feedback", {"rating": "down"}, format="json")

    assert down.status_code == 201, down.json()
    (task,) = tasks(output)
    assert (task.purpose, task.level_required) == ("user_feedback", 2)
    output.refresh_from_db()
    assert "the judges passed it, its end user did not: a level 2 reviewer looks" in output.decision_reason


def test_a_record_only_judge_failing_does_not_hold_up_the_decision(tenant, service, django_capture_on_commit_callbacks):
    judge_create(
        tenant=tenant, data={"name": "style", "kind": "length", "params": {"max_chars": 5}, "on_fail": "record"}
    )
    output = submit(service, django_capture_on_commit_callbacks, 1, CARD)  # pii forces the review, style records
    junior = reviewer(tenant, 1, "junior")
    output.judgements.filter(judge__name="pii").update(result="pass")  # only the record-only judge failed

    review(junior, claim(junior).json()["id"], decision="approve")

    output.refresh_from_db()
    assert (output.decision, len(tasks(output))) == ("approved", 1)
