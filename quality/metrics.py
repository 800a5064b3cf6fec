"""Reads of the metrics rollups: the figures of seed 001 Table 1 for a period, grouped as asked.

Every read here goes to the rollups (``quality.models``), never to the outputs: whole UTC
days of the period from the day rows, its ragged edges (a period that does not start or
end at midnight) from the hour rows. A figure that a grouping does not apply to is None
(a reviewer has no tier; a judge no reviewer).

Definitions (also in docs/metrics.md):

- **error rate**: outputs people rejected or corrected, over the outputs people decided
  (the sampled ones: an estimate of the error rate of what reached people);
- **SLA compliance**: 1 - tasks found late / tasks that counted (done, or found late);
- **modification rate**: corrections over reviews; **escalation rate**: escalations over reviews;
- **throughput**: reviews per day of the period; **reviews per hour** spent: timed reviews
  over their hours;
- **stopped / corrected before delivery**: outputs held for a person (sequential) that people
  rejected / corrected, plus outputs blocked without a person (a judge, the stop button);
- **caught by thumbs-down**: rejected or corrected by the person an end user's thumbs-down sent.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import numpy as np
import orjson
from django.db.models import Case, F, IntegerField, Q, Sum, TextField, Value, When
from django.db.models.functions import Cast

from policies.models import Judge
from quality import histograms
from quality.models import (
    Grain,
    JudgeRollup,
    OutputDaySummary,
    OutputRollup,
    OutputSummaryScope,
    ReviewDaySummary,
    ReviewRollup,
    RollupState,
    SummaryScope,
)
from quality.rollups import SUMMARY_KEYS
from reviews.models import Queue
from tenants.models import Tenant
from tenants.selectors import members_of

DAY = timedelta(days=1)
OUTPUT_DIMENSIONS = {
    "tier": "tier",
    "application": "application",
    "model": "model",
    "prompt_version": "prompt_version",
    "category": "category",
}
REVIEW_DIMENSIONS = {"reviewer": "reviewer_id", "queue": "queue_id", "category": "category"}
JUDGE_DIMENSIONS = {"judge": "judge_id"}
GROUP_BY = ("day", *OUTPUT_DIMENSIONS, "reviewer", "queue", "judge")
MAX_DAYS = 366


def period_split(start: datetime, end: datetime) -> tuple[tuple[datetime, datetime] | None, list[tuple]]:
    """[start, end) (both on whole hours) as its whole UTC days (None: none) and the hour
    ranges at its ragged edges."""
    first_day = start.astimezone(UTC).replace(hour=0) + (DAY if start.astimezone(UTC).hour else timedelta(0))
    last_day = end.astimezone(UTC).replace(hour=0)
    if first_day >= last_day:
        return None, [(start, end)]
    edges = [(a, b) for a, b in ((start, first_day), (last_day, end)) if a < b]
    return (first_day, last_day), edges


def _hours_q(edges: list[tuple]) -> Q:
    where = Q(pk__in=[])
    for a, b in edges:
        where |= Q(grain=Grain.HOUR, bucket__gte=a, bucket__lt=b)
    return where


def period_rows(start: datetime, end: datetime) -> Q:
    """The rollup rows that cover [start, end) exactly (both on whole hours)."""
    days, edges = period_split(start, end)
    if days is None:
        return _hours_q(edges)
    return Q(grain=Grain.DAY, bucket__gte=days[0], bucket__lt=days[1]) | _hours_q(edges)


def review_sources(tenant: Tenant, start: datetime, end: datetime, columns, reviews_of: dict | None) -> list:
    """The querysets whose rows together hold a period's review figures for a grouping.

    The period's whole days come from the smallest ``ReviewDaySummary`` scope that has the
    grouping's columns (and the column ``reviews_of`` filters on); when none has them (two of
    reviewer, queue and category at once), from the review rollup's day rows. The ragged
    edges always come from its hour rows.
    """
    wanted = {column for column in (columns or []) if column != "bucket"} | set(reviews_of or {})
    scope = next((scope for scope, keys in SUMMARY_KEYS.items() if wanted <= set(keys)), None)
    days, edges = period_split(start, end)
    fine = ReviewRollup.objects.for_tenant(tenant).filter(**(reviews_of or {}))
    if scope is None:
        return [fine.filter(period_rows(start, end))]
    sources = []
    if days is not None:
        summaries = ReviewDaySummary.objects.for_tenant(tenant).filter(scope=scope, **(reviews_of or {}))
        sources.append(summaries.filter(bucket__gte=days[0], bucket__lt=days[1]))
    if edges:
        sources.append(fine.filter(_hours_q(edges)))
    return sources


def output_sources(tenant: Tenant, start: datetime, end: datetime, columns, fine_sums: dict) -> list[tuple]:
    """(queryset, sums) pairs whose rows together hold a period's output figures for a grouping.

    The whole days come from ``OutputDaySummary`` when the grouping names at most one output
    dimension (besides the day): its rows of that dimension, the value named as the dimension's
    column; otherwise, and for the ragged edges' hours, from the output rollup's rows.
    """
    dimensions = [column for column in (columns or []) if column != "bucket"]
    days, edges = period_split(start, end)
    fine = OutputRollup.objects.for_tenant(tenant)
    if len(dimensions) > 1 or days is None:
        return [(fine.filter(period_rows(start, end)), fine_sums)]
    scope = dimensions[0] if dimensions else OutputSummaryScope.ALL
    summaries = OutputDaySummary.objects.for_tenant(tenant).filter(scope=scope, bucket__gte=days[0], bucket__lt=days[1])
    if dimensions:
        summaries = summaries.annotate(**{dimensions[0]: F("key")})
    sources = [(summaries, {name: Sum(name) for name in fine_sums})]
    if edges:
        sources.append((fine.filter(_hours_q(edges)), fine_sums))
    return sources


def _ratio(part, whole) -> float | None:
    return None if not whole else part / whole


@dataclass
class OutputFigures:
    outputs: int = 0
    sampled: int = 0
    auto_approved: int = 0
    blocked: int = 0
    decided: int = 0
    approved: int = 0
    rejected: int = 0
    corrected: int = 0
    held_rejected: int = 0
    held_corrected: int = 0
    thumbs_down: int = 0
    caught_by_feedback: int = 0
    tasks: int = 0
    tasks_late: int = 0

    def add(self, row: dict) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + (row.get(name) or 0))

    @property
    def errors(self) -> int:
        return self.rejected + self.corrected

    @property
    def error_rate(self) -> float | None:
        return _ratio(self.errors, self.decided)

    @property
    def sla_compliance(self) -> float | None:
        return None if not self.tasks else 1 - self.tasks_late / self.tasks

    @property
    def stopped_before_delivery(self) -> int:
        return self.blocked + self.held_rejected


@dataclass
class ReviewFigures:
    days: float = 1.0
    reviews: int = 0
    approves: int = 0
    rejects: int = 0
    corrects: int = 0
    escalates: int = 0
    late: int = 0
    timed: int = 0
    time_total: int = 0
    # Counts per bin of quality.histograms, as an array: a month of a reviewer's days adds up
    # with a vector add, not a dict update per bin.
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(histograms.BINS, dtype=np.int64))

    def add(self, row: dict) -> None:
        for name in REVIEW_FIELDS:
            setattr(self, name, getattr(self, name) + (row.get(name) or 0))

    def merge(self, other: "ReviewFigures") -> None:
        """Add another group's sums and histogram (a day's figures into a period's)."""
        for name in REVIEW_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.histogram = self.histogram + other.histogram

    @property
    def modification_rate(self) -> float | None:
        return _ratio(self.corrects, self.reviews)

    @property
    def intervention_rate(self) -> float | None:
        return _ratio(self.corrects + self.rejects, self.reviews)

    @property
    def escalation_rate(self) -> float | None:
        return _ratio(self.escalates, self.reviews)

    @property
    def time_median(self) -> float | None:
        return histograms.quantile_of(self.histogram, 0.5)

    @property
    def time_p90(self) -> float | None:
        return histograms.quantile_of(self.histogram, 0.9)

    @property
    def throughput_per_day(self) -> float | None:
        return self.reviews / self.days if self.days else None

    @property
    def reviews_per_hour(self) -> float | None:
        return None if not self.time_total else self.timed / (self.time_total / 3600)


@dataclass
class JudgeFigures:
    judged: int = 0
    failed: int = 0
    unsure: int = 0
    decided: int = 0
    errors: int = 0
    passed_decided: int = 0
    passed_errors: int = 0
    failed_decided: int = 0
    failed_errors: int = 0

    def add(self, row: dict) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + (row.get(name) or 0))

    @property
    def fail_rate(self) -> float | None:
        return _ratio(self.failed, self.judged)

    @property
    def error_rate(self) -> float | None:
        return _ratio(self.errors, self.decided)

    @property
    def miss_rate(self) -> float | None:
        """Of the outputs it passed that people decided, the share people found wrong."""
        return _ratio(self.passed_errors, self.passed_decided)

    @property
    def precision(self) -> float | None:
        """Of the outputs it failed that people decided, the share people found wrong too."""
        return _ratio(self.failed_errors, self.failed_decided)


@dataclass
class Group:
    key: dict[str, str]
    outputs: OutputFigures | None = None
    reviews: ReviewFigures | None = None
    judges: JudgeFigures | None = None


@dataclass
class Report:
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    watermark: datetime | None
    totals: Group
    groups: list[Group]


def _day_label(bucket) -> str:
    return bucket.astimezone(UTC).date().isoformat()


def _family(model, dimensions: dict[str, str], group_by: tuple[str, ...]):
    """The columns to group a rollup by, or None when it cannot be grouped so."""
    columns = []
    for name in group_by:
        if name == "day":
            columns.append("bucket")
        elif name in dimensions:
            columns.append(dimensions[name])
        else:
            return None
    return columns


def _key(row: dict, group_by: tuple[str, ...], columns: list[str], names: dict) -> tuple:
    parts = []
    for name, column in zip(group_by, columns, strict=True):
        value = row[column]
        if name == "day":
            parts.append(_day_label(value))
        else:
            parts.append(names.get(name, {}).get(value, "" if value is None else str(value)))
    return tuple(parts)


def metrics_report(
    *,
    tenant: Tenant,
    start: datetime,
    end: datetime,
    group_by: tuple[str, ...] = (),
    reviews_of: dict[str, int] | None = None,
    totals: bool = True,
    quantiles: bool = True,
) -> Report:
    """The figures of [start, end) (whole hours, UTC), in total and per group of ``group_by``.

    ``reviews_of`` (``{"reviewer_id": ...}`` or ``{"queue_id": ...}``) reads the reviews of one
    reviewer or queue only, and nothing of the outputs or judges. With ``totals=False`` a
    grouped report reads only the rollups the grouping applies to (its totals are then those
    of these rollups only); every sum is taken by the database, the histograms merged there too
    (``quantiles=False`` skips them: the medians and p90 are then None).
    """
    rows = period_rows(start, end)
    days = max((end - start) / DAY, 1 / 24)
    names = dimension_names(tenant, group_by)
    groups: dict[tuple, Group] = {}
    whole = Group(key={})

    def group(key: tuple) -> Group:
        if key not in groups:
            groups[key] = Group(key=dict(zip(group_by, key, strict=True)))
        return groups[key]

    def wanted(columns) -> bool:
        return columns is not None or (totals and bool(group_by)) or not group_by

    output_sums = {name: Sum(name) for name in OutputFigures.__dataclass_fields__ if not name.startswith("held_")}
    output_sums |= {
        "held_rejected": Sum("rejected", filter=Q(held=True)),
        "held_corrected": Sum("corrected", filter=Q(held=True)),
    }
    columns = _family(OutputRollup, OUTPUT_DIMENSIONS, group_by)
    if reviews_of is None and wanted(columns):
        whole.outputs = OutputFigures()
        for source, sums in output_sources(tenant, start, end, columns, output_sums):
            for row in _aggregate(source, columns, sums):
                whole.outputs.add(row)
                if columns:
                    target = group(_key(row, group_by, columns, names))
                    target.outputs = target.outputs or OutputFigures()
                    target.outputs.add(row)

    judge_sums = {name: Sum(name) for name in JudgeFigures.__dataclass_fields__}
    columns = _family(JudgeRollup, JUDGE_DIMENSIONS, group_by)
    if reviews_of is None and wanted(columns):
        whole.judges = JudgeFigures()
        for row in _aggregate(JudgeRollup.objects.for_tenant(tenant).filter(rows), columns, judge_sums):
            whole.judges.add(row)
            if columns:
                target = group(_key(row, group_by, columns, names))
                target.judges = target.judges or JudgeFigures()
                target.judges.add(row)

    columns = _family(ReviewRollup, REVIEW_DIMENSIONS, group_by)
    if wanted(columns):
        sources = review_sources(tenant, start, end, columns, reviews_of)
        review_sums = {name: Sum(name) for name in REVIEW_FIELDS}
        group_days = 1.0 if "day" in group_by else days
        whole.reviews = ReviewFigures(days=days)
        for source in sources:
            for row in _aggregate(source, columns, review_sums):
                whole.reviews.add(row)
                if columns:
                    target = group(_key(row, group_by, columns, names))
                    target.reviews = target.reviews or ReviewFigures(days=group_days)
                    target.reviews.add(row)
        if quantiles:
            merged: dict[tuple, np.ndarray] = {}
            for source in sources:
                for values, counts in _histograms(source, columns or []):
                    key = _key(dict(zip(columns, values, strict=True)), group_by, columns, names) if columns else ()
                    merged[key] = counts if key not in merged else merged[key] + counts
            for key, counts in merged.items():
                whole.reviews.histogram = whole.reviews.histogram + counts
                if columns:
                    groups[key].reviews.histogram = counts

    watermark = RollupState.objects.for_tenant(tenant).values_list("watermark", flat=True).first()
    ordered = sorted(groups.values(), key=lambda g: tuple(g.key.values()))
    return Report(start=start, end=end, group_by=group_by, watermark=watermark, totals=whole, groups=ordered)


REVIEW_FIELDS = ("reviews", "approves", "rejects", "corrects", "escalates", "late", "timed", "time_total")


def _histograms(queryset, columns: list[str]):
    """(group values, counts per bin as an array): the rows' time histograms summed per group.

    The rows' histograms are read as JSON text and summed here: for the few thousand rows of
    a month's summaries this is several times cheaper than taking the objects apart in SQL
    (``jsonb_each_text`` makes a row of every bin of every row before grouping them).
    """
    merged: dict[tuple, np.ndarray] = {}
    rows = queryset.annotate(h=Cast("time_histogram", TextField())).values_list(*columns, "h").order_by()
    for row in rows:
        stored = orjson.loads(row[-1])
        if not stored:
            continue
        if isinstance(stored, list):  # a day summary: every bin's count
            counts = np.array(stored, dtype=np.int64)
        else:  # a rollup row: the non-empty bins
            counts = np.zeros(histograms.BINS, dtype=np.int64)
            counts[np.fromiter(map(int, stored), dtype=np.int64, count=len(stored))] = list(stored.values())
        into = merged.get(row[:-1])
        merged[row[:-1]] = counts if into is None else into + counts
    yield from merged.items()


def _aggregate(queryset, columns, sums: dict) -> list[dict]:
    """Sums (named apart from the columns they read, which Django requires) per group of ``columns``."""
    renamed = {f"s_{name}": aggregate for name, aggregate in sums.items()}
    rows = [queryset.aggregate(**renamed)] if not columns else queryset.values(*columns).order_by().annotate(**renamed)
    return [{(name[2:] if name.startswith("s_") else name): value for name, value in row.items()} for row in rows]


def reviewer_halves(
    *, tenant: Tenant, start: datetime, middle: datetime, end: datetime, reviews_of: dict | None = None
) -> tuple[dict[str, ReviewFigures], dict[str, ReviewFigures], dict[str, ReviewFigures]] | None:
    """Each reviewer's review figures over [start, end), [start, middle) and [middle, end), by
    name, from one pass over the reviewer day summaries (two statements: the sums per reviewer
    and half, and the histograms). For whole days only (all three at midnight UTC, as the
    reviewers' page asks); None otherwise, for :func:`metrics_report` per period."""
    if any(moment.astimezone(UTC).time() != time(0) for moment in (start, middle, end)):
        return None
    rows = (
        ReviewDaySummary.objects.for_tenant(tenant)
        .filter(scope=SummaryScope.REVIEWER, bucket__gte=start, bucket__lt=end, **(reviews_of or {}))
        .annotate(half=Case(When(bucket__gte=middle, then=Value(1)), default=Value(0), output_field=IntegerField()))
    )
    names = dimension_names(tenant, ("reviewer",))["reviewer"]
    spans = ((middle - start) / DAY, (end - middle) / DAY)
    parts: tuple[dict, dict] = ({}, {})

    def part(reviewer_id, half) -> ReviewFigures:
        name = names.get(reviewer_id, str(reviewer_id))
        return parts[half].setdefault(name, ReviewFigures(days=spans[half]))

    for row in _aggregate(rows, ["reviewer_id", "half"], {name: Sum(name) for name in REVIEW_FIELDS}):
        part(row["reviewer_id"], row["half"]).add(row)
    for (reviewer_id, half), counts in _histograms(rows, ["reviewer_id", "half"]):
        part(reviewer_id, half).histogram = counts
    whole: dict[str, ReviewFigures] = {}
    for name in sorted({*parts[0], *parts[1]}):
        figures = whole[name] = ReviewFigures(days=(end - start) / DAY)
        for half in parts:
            if name in half:
                figures.merge(half[name])
    return whole, parts[0], parts[1]


def dimension_names(tenant: Tenant, group_by: tuple[str, ...]) -> dict[str, dict]:
    """Ids to names for the groupings that key on ids (reviewers, queues, judges)."""
    names: dict[str, dict] = {}
    if "reviewer" in group_by:
        names["reviewer"] = {m.user_id: m.user.get_username() for m in members_of(tenant=tenant)}
    if "queue" in group_by:
        names["queue"] = dict(Queue.objects.for_tenant(tenant).values_list("pk", "name"))
    if "judge" in group_by:
        names["judge"] = dict(Judge.objects.for_tenant(tenant).values_list("pk", "name"))
    return names
