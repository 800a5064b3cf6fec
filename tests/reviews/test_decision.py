"""The rule that decides an output after reviews: tested as a pure function, then both ways
of recording a review (the portable ORM path and PostgreSQL's set statements) checked
against it over every sequence of verdicts."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from reviews import decision as rule
from reviews.decision import Outcome, ReviewRow, output_outcome
from reviews.models import Output, ReviewTask
from reviews.services import review as review_service
from reviews.services.claims import reviewer_for, task_claim
from reviews.services.review import review_submit
from tests.reviews.conftest import GOOD_SCORES, reviewer, submit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(verdict: str, corrected: str = "", minutes: int = 0) -> ReviewRow:
    return ReviewRow(verdict, corrected, T0 + timedelta(minutes=minutes))


def decide(review, others=(), earlier=()):
    return output_outcome(
        review=review, submitted_output="as submitted", other_approval_statuses=others, earlier_approval_reviews=earlier
    )


def test_a_reject_decides_at_once_and_cancels_the_other_approvals():
    assert decide(row("reject"), others=["pending", "claimed"]) == Outcome("rejected", None, "block", True)


def test_an_escalation_decides_nothing():
    assert decide(row("escalate"), others=[]) is None


@pytest.mark.parametrize("open_status", ["pending", "claimed"])
def test_an_approval_waits_for_the_other_open_approvals(open_status):
    assert decide(row("approve"), others=["done", open_status]) is None


def test_the_last_approval_approves_the_output_as_submitted():
    assert decide(row("approve"), others=["done", "cancelled"]) == Outcome("approved", "as submitted", "deliver", False)


def test_the_latest_correction_wins_whoever_made_it():
    earlier = [row("correct", "first fix", 1), row("approve", minutes=2)]
    assert decide(row("approve", minutes=3), others=["done", "done"], earlier=earlier).final_output == "first fix"
    later = decide(row("correct", "second fix", 3), others=["done"], earlier=earlier)
    assert (later.decision, later.final_output) == ("corrected", "second fix")


def test_this_review_wins_a_tie_with_an_earlier_correction():
    earlier = [row("correct", "earlier", 5)]
    assert decide(row("correct", "mine", 5), others=["done"], earlier=earlier).final_output == "mine"


# Both paths against the rule ----------------------------------------------------------

VERDICTS = ("approve", "correct", "reject")


def _expected(verdicts: list[str], submitted: str) -> tuple[str, str | None, str]:
    """Replay the verdicts through the pure rule, the way the rows would read."""
    earlier: list[ReviewRow] = []
    statuses = ["pending"] * len(verdicts)
    for index, verdict in enumerate(verdicts):
        review = row(verdict, f"fix {index}" if verdict == "correct" else "", index)
        others = [status for position, status in enumerate(statuses) if position != index]
        outcome = output_outcome(
            review=review,
            submitted_output=submitted,
            other_approval_statuses=others,
            earlier_approval_reviews=earlier,
        )
        statuses[index] = "done"
        earlier.append(review)
        if outcome is not None:
            return outcome.decision, outcome.final_output, outcome.delivery
    raise AssertionError("every approval done, yet nothing decided")


def _scenarios():
    for verdict in VERDICTS:
        yield "medium-app", (verdict,)
    for first, second in itertools.product(VERDICTS, VERDICTS):
        if first != "reject":  # a reject decides: there is no second review to give
            yield "critical-app", (first, second)


def _paths():
    yield "portable"
    if connection.vendor == "postgresql":
        yield "set statements"


@pytest.mark.parametrize(("application", "verdicts"), list(_scenarios()))
def test_both_recording_paths_decide_as_the_rule_does(tenant, workflow, monkeypatch, application, verdicts):
    people = [reviewer(tenant, 3, f"person{index}").person for index in range(len(verdicts))]
    for number, path in enumerate(_paths(), start=1):
        if path == "portable":
            monkeypatch.setattr(  # (the portable path reads for itself: the reads the lock brought are left)
                review_service, "_record_in_set_statements", lambda *args: review_service._record_portably(*args[:7])
            )
        else:
            monkeypatch.undo()
        output_id = submit(workflow, number, application)["id"]
        decided = []
        for person, verdict in zip(people, verdicts, strict=True):
            task = task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=person))
            assert task is not None and str(task["output"]["id"]) == output_id
            outcome = review_submit(
                tenant=tenant,
                user=person,
                task_id=task["id"],
                decision=verdict,
                scores=GOOD_SCORES,
                corrected_output=f"fix {len(decided)}" if verdict == "correct" else None,
            )
            decided.append(outcome.decided_now)

        stored = Output.objects.for_tenant(tenant).get(pk=output_id)
        expected = _expected(list(verdicts), stored.output)
        assert (stored.decision, stored.final_output, stored.delivery) == expected, path
        assert decided == [False] * (len(verdicts) - 1) + [True], path
        statuses = set(
            ReviewTask.objects.for_tenant(tenant).filter(output_id=output_id).values_list("status", flat=True)
        )
        assert statuses <= {"done", "cancelled"}, path
        assert rule.OPEN_STATUSES.isdisjoint(statuses)
