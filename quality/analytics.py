"""Reviewer analytics (issue 13 point 5): per reviewer and per queue over a period, from the
review rollups, with drift.

**Accuracy on gold and agreement with peers** come from the golden sets and the agreement
statistics, built beside this module: :func:`gold_accuracies` and :func:`peer_agreements`
read them for every reviewer at once (one grouped query, one read of the period's
reviews); a reviewer with no gold answered or no overlap review in the period shows
"no data".

**Drift.** The period is cut in two halves of whole days; a reviewer drifts when, with at
least ``DRIFT_MIN_REVIEWS`` reviews in each half, a figure that should hold steady falls
in the second half:

- accuracy on gold by more than ``DRIFT_ACCURACY_DROP`` (10 points),
- agreement with peers by more than ``DRIFT_AGREEMENT_DROP`` (0.10),
- or the signs of rubber-stamping together: the intervention rate (rejections and
  corrections over reviews) falls below half of what it was, by at least 5 points, *and* the
  median time spent falls by more than 40 %.

Halves, not a regression slope: a quality lead can check it by reading the two columns.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q

from quality.agreement import reviewer_peer_agreement
from quality.metrics import DAY, ReviewFigures, dimension_names, metrics_report, reviewer_halves
from reviews.models import GoldTask
from tenants.models import Tenant

DRIFT_MIN_REVIEWS = 20
DRIFT_ACCURACY_DROP = 0.10
DRIFT_AGREEMENT_DROP = 0.10
DRIFT_INTERVENTION_FACTOR = 0.5
DRIFT_INTERVENTION_POINTS = 0.05
DRIFT_TIME_FACTOR = 0.6


def gold_accuracies(*, tenant: Tenant, start: datetime, end: datetime) -> dict[int, float]:
    """Each reviewer's share of gold items (exam and live gold) answered as expected in
    [start, end), one grouped query: user id -> share (absent: no gold answered)."""
    rows = (
        GoldTask.objects.for_tenant(tenant)
        .filter(answered_at__gte=start, answered_at__lt=end, correct__isnull=False)
        .values("user_id")
        .order_by()
        .annotate(total=Count("pk"), right=Count("pk", filter=Q(correct=True)))
    )
    return {row["user_id"]: row["right"] / row["total"] for row in rows if row["total"]}


def gold_accuracy(*, tenant: Tenant, reviewer_id: int, start: datetime, end: datetime) -> float | None:
    """One reviewer's accuracy on gold in [start, end); None: no gold answered in the period."""
    return gold_accuracies(tenant=tenant, start=start, end=end).get(reviewer_id)


def peer_agreements(*, tenant: Tenant, start: datetime, end: datetime) -> dict[int, float | None]:
    """Every reviewer's agreement with peers on overlap reviews in [start, end), from one read of
    the period's reviews: user id -> Cohen's kappa of their decisions against their peers' on the
    same outputs (None: a kappa that is undefined, everyone gave the same decision; absent: no
    overlap review)."""
    return {
        person: figures.kappa
        for person, figures in reviewer_peer_agreement(tenant=tenant, start=start, end=end).items()
    }


def peer_agreement(*, tenant: Tenant, reviewer_id: int, start: datetime, end: datetime) -> float | None:
    """One reviewer's agreement with peers in [start, end) (see :func:`peer_agreements`)."""
    return peer_agreements(tenant=tenant, start=start, end=end).get(reviewer_id)


def drift_reasons(
    first: ReviewFigures,
    second: ReviewFigures,
    *,
    accuracy: tuple[float | None, float | None] = (None, None),
    agreement: tuple[float | None, float | None] = (None, None),
) -> list[str]:
    """Why a reviewer's second half is worse than the first (empty: no drift). Pure."""
    if first.reviews < DRIFT_MIN_REVIEWS or second.reviews < DRIFT_MIN_REVIEWS:
        return []
    reasons = []
    if None not in accuracy and accuracy[0] - accuracy[1] > DRIFT_ACCURACY_DROP:
        reasons.append(f"accuracy on gold fell from {accuracy[0]:.0%} to {accuracy[1]:.0%}")
    if None not in agreement and agreement[0] - agreement[1] > DRIFT_AGREEMENT_DROP:
        reasons.append(f"agreement with peers fell from {agreement[0]:.2f} to {agreement[1]:.2f}")
    before, after = first.intervention_rate or 0.0, second.intervention_rate or 0.0
    time_before, time_after = first.time_median, second.time_median
    if (
        after < before * DRIFT_INTERVENTION_FACTOR
        and before - after >= DRIFT_INTERVENTION_POINTS
        and time_before
        and time_after is not None
        and time_after < time_before * DRIFT_TIME_FACTOR
    ):
        reasons.append(
            f"intervenes less ({before:.0%} to {after:.0%}) and faster (median {time_before:.0f} s to "
            f"{time_after:.0f} s): rubber-stamping?"
        )
    return reasons


def halves(start: datetime, end: datetime) -> tuple[datetime, datetime, datetime]:
    """The period cut in two at a whole day (or hour, for a period shorter than two days)."""
    span = end - start
    step = DAY if span >= 2 * DAY else timedelta(hours=1)
    middle = start + step * int((span / step) // 2)
    return start, max(middle, start + step), end


@dataclass
class Row:
    """One reviewer's or queue's line of the analytics table."""

    id: int
    name: str
    figures: ReviewFigures
    accuracy: float | None = None
    agreement: float | None = None
    drift: list[str] | None = None


def reviewer_rows(*, tenant: Tenant, start: datetime, end: datetime, reviewer_id: int | None = None) -> list[Row]:
    """Each reviewer with reviews in the period (or only ``reviewer_id``): their figures, gold
    accuracy, agreement, drift."""
    only = {"reviewer_id": reviewer_id} if reviewer_id is not None else None
    a, middle, b = halves(start, end)
    whole, first, second = _reviewer_figures(tenant, start, middle, end, only)
    ids = _ids(tenant, "reviewer")
    # Accuracy and agreement of every reviewer at once, per period (whole, first half, second half):
    # one grouped query and one read of the overlap reviews each, however many reviewers there are.
    accuracy = [gold_accuracies(tenant=tenant, start=s, end=e) for s, e in ((start, end), (a, middle), (middle, b))]
    agreement = [peer_agreements(tenant=tenant, start=s, end=e) for s, e in ((start, end), (a, middle), (middle, b))]
    rows = []
    for name, figures in sorted(whole.items()):
        person = ids.get(name)
        drift = drift_reasons(
            first.get(name, ReviewFigures()),
            second.get(name, ReviewFigures()),
            accuracy=(accuracy[1].get(person), accuracy[2].get(person)),
            agreement=(agreement[1].get(person), agreement[2].get(person)),
        )
        rows.append(
            Row(
                id=person,
                name=name,
                figures=figures,
                accuracy=accuracy[0].get(person),
                agreement=agreement[0].get(person),
                drift=drift,
            )
        )
    return rows


def queue_rows(*, tenant: Tenant, start: datetime, end: datetime) -> list[Row]:
    """Each queue with reviews in the period, and its figures."""
    whole = metrics_report(tenant=tenant, start=start, end=end, group_by=("queue",), totals=False)
    ids = _ids(tenant, "queue")
    return [Row(id=ids.get(g.key["queue"]), name=g.key["queue"], figures=g.reviews) for g in whole.groups]


def _reviewer_figures(tenant: Tenant, start: datetime, middle: datetime, end: datetime, only: dict | None):
    """Each reviewer's figures over the period and over each half: name -> ReviewFigures, three times.

    A period of whole days (as the pages ask for) is read in one pass over the reviewer day
    summaries (``quality.metrics.reviewer_halves``); any other, one report per period.
    """
    read = reviewer_halves(tenant=tenant, start=start, middle=middle, end=end, reviews_of=only)
    if read is not None:
        return read

    def by_reviewer(a: datetime, b: datetime) -> dict[str, ReviewFigures]:
        report = metrics_report(tenant=tenant, start=a, end=b, group_by=("reviewer",), totals=False, reviews_of=only)
        return _by_key(report, "reviewer")

    return by_reviewer(start, end), by_reviewer(start, middle), by_reviewer(middle, end)


def _by_key(report, dimension: str) -> dict[str, ReviewFigures]:
    return {group.key[dimension]: group.reviews for group in report.groups}


def _ids(tenant: Tenant, dimension: str) -> dict[str, int]:
    return {name: key for key, name in dimension_names(tenant, (dimension,))[dimension].items()}
