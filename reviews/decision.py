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
