"""The rule that decides an output once people have reviewed it: a pure function of rows.

Both ways of recording a review apply it, so it is written once: the portable path
(the ORM, SQLite) and PostgreSQL's set statements each read the same rows, call
:func:`output_outcome`, and write what it returns.

The rule:

* a reject decides ``rejected`` at once; the output's other open approval tasks are
  cancelled (overlap tasks stay, to measure agreement);
* otherwise the output is decided when no approval task is left open: every one was
  approved or corrected, each by a distinct reviewer (the database enforces that);
* the decision is ``corrected`` with the latest correction when any approval corrected
  the output, else ``approved`` with the output as submitted.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from reviews.models import Decision, Delivery, Review, TaskPurpose, TaskStatus

# The tasks whose approval a decision waits for (overlap tasks only measure agreement).
APPROVAL_PURPOSES = (TaskPurpose.APPROVAL, TaskPurpose.USER_FEEDBACK, TaskPurpose.CONFLICT)
OPEN_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.CLAIMED})


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """What the rule reads of one review."""

    verdict: str
    corrected_output: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision to write once, and what it does to the output's other tasks."""

    decision: str
    final_output: str | None
    delivery: str
    cancels_open_tasks: bool


def output_outcome(
    *,
    review: ReviewRow,
    submitted_output: str,
    other_approval_statuses: Iterable[str],
    earlier_approval_reviews: Sequence[ReviewRow],
) -> Outcome | None:
    """The decision after ``review``, or None while approvals are still open.

    ``other_approval_statuses`` are the statuses of the output's other approval tasks
    (the one under review excluded), ``earlier_approval_reviews`` the reviews already
    recorded on approval tasks. Escalations decide nothing.
    """
    if review.verdict == Review.Verdict.ESCALATE:
        return None
    if review.verdict == Review.Verdict.REJECT:
        return Outcome(Decision.REJECTED, None, Delivery.BLOCK, cancels_open_tasks=True)
    if any(status in OPEN_STATUSES for status in other_approval_statuses):
        return None
    corrections = [row for row in (*earlier_approval_reviews, review) if row.verdict == Review.Verdict.CORRECT]
    if corrections:
        latest = sorted(corrections, key=lambda row: row.created_at)[-1]  # stable: this review wins a tie
        return Outcome(Decision.CORRECTED, latest.corrected_output, Delivery.DELIVER, cancels_open_tasks=False)
    return Outcome(Decision.APPROVED, submitted_output, Delivery.DELIVER, cancels_open_tasks=False)


def second_look_level(
    *, outcome: Outcome | None, judge_failed: bool, second_look_exists: bool, reviewer_level: int
) -> int | None:
    """The level of a reviewer who must look again before people approve what a judge failed.

    Seed 003: where signals disagree, a higher-level reviewer decides. When the outcome
    would approve or correct an output that a judge failed, and nobody has taken that
    second look yet, the decision waits for one more approval by a reviewer one level
    above the one deciding (none above level 3: then the decision stands). A reject
    agrees with the judge and decides at once.
    """
    if outcome is None or outcome.decision == Decision.REJECTED:
        return None
    if not judge_failed or second_look_exists or reviewer_level >= 3:
        return None
    return reviewer_level + 1


# Adjudication: overlap reviews that disagree go to a higher-level reviewer (issue 13).

# A graded criterion's scores disagree when they are further apart than this many points
# (``HITL_ADJUDICATION_TOLERANCE``, default 1: 3 and 4 agree, 3 and 5 do not). Binary and
# categorical criteria disagree on any difference; text criteria are never compared.
DEFAULT_ADJUDICATION_TOLERANCE = 1


@dataclass(frozen=True, slots=True)
class ScoredReview:
    """What the disagreement rule reads of one review."""

    reviewer: int
    verdict: str
    scores: dict


def reviews_disagreement(
    *, reviews: Sequence[ScoredReview], criteria: Sequence[dict] | None, tolerance: int
) -> str | None:
    """Why the reviews of one output disagree (their decisions, or a criterion beyond the
    tolerance), or None when they agree. Escalations are not verdicts and are left out."""
    verdicts = [row for row in reviews if row.verdict != Review.Verdict.ESCALATE]
    if len(verdicts) < 2:
        return None
    reasons = []
    decisions = sorted({row.verdict for row in verdicts})
    if len(decisions) > 1:
        reasons.append("decisions " + " vs ".join(decisions))
    for criterion in criteria or ():
        key, kind = criterion.get("key"), criterion.get("kind")
        values = [row.scores.get(key) for row in verdicts if row.scores.get(key) is not None]
        if len(values) < 2 or kind == "text":
            continue
        if kind == "graded":
            if max(values) - min(values) > tolerance:
                reasons.append(f"{key} {min(values)} vs {max(values)} (tolerance {tolerance})")
        elif len({str(value) for value in values}) > 1:
            reasons.append(f"{key} " + " vs ".join(sorted({str(value).lower() for value in values})))
    return "; ".join(reasons) or None


def adjudication_level(*, reviewer_levels: Iterable[int]) -> int:
    """A reviewer one level above the highest of those who disagree (level 3 at most: then
    another level-3 reviewer, never one of them, since nobody reviews an output twice)."""
    return min(3, max(reviewer_levels, default=1) + 1)


def adjudication_outcome(*, verdict: str, corrected_output: str, submitted_output: str) -> Outcome | None:
    """The adjudicator's verdict is the output's decision, whatever was decided before."""
    if verdict == Review.Verdict.REJECT:
        return Outcome(Decision.REJECTED, None, Delivery.BLOCK, cancels_open_tasks=True)
    if verdict == Review.Verdict.CORRECT:
        return Outcome(Decision.CORRECTED, corrected_output, Delivery.DELIVER, cancels_open_tasks=True)
    if verdict == Review.Verdict.APPROVE:
        return Outcome(Decision.APPROVED, submitted_output, Delivery.DELIVER, cancels_open_tasks=True)
    return None
