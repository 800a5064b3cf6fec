"""Agreement over production overlap reviews: rows from the database in, figures out.

House style rule 23: the statistics are ``hitl.statistics`` (pure functions over arrays,
checked against published examples); this module only prepares the arrays from review rows
and picks the statistic that matches each criterion's kind:

| what is rated | level of Krippendorff's alpha | also |
|---|---|---|
| the decision (approve, reject, correct) | nominal | Fleiss' kappa when every unit has as many ratings |
| a ``binary`` or ``categorical`` criterion | nominal | Fleiss' kappa, as above |
| a ``graded`` criterion (1-5, ...) | ordinal | |
| a ``text`` criterion | not compared | |

A *unit* is one output; its ratings are the reviews people gave it (escalations excluded:
they decide nothing). Outputs with fewer than two reviews are not pairable and drop out,
as Krippendorff's method says, so the figures are those of the overlap sample.

**Low agreement.** A criterion whose alpha is below ``HITL_AGREEMENT_LOW_ALPHA`` (0.667
unless set) is flagged. The number is Krippendorff's own: "rely only on variables with
reliabilities above alpha = .800; consider variables with reliabilities between .667 and
.800 only for drawing tentative conclusions" (K. Krippendorff, *Content Analysis: An
Introduction to Its Methodology*, 2nd ed., 2004, p. 241). Below 0.667 even tentative
conclusions are not supported. A figure over fewer than ``HITL_AGREEMENT_MIN_UNITS`` units
(10) is shown but never flagged: too few to say.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Window
from django.db.models.fields.json import KT

from hitl.statistics import cohen_kappa, cohen_kappa_table, fleiss_kappa, krippendorff_alpha
from policies.selectors import rubric_criteria
from reviews.models import Decision, Judgement, JudgementResult, Review
from tenants.models import Tenant

DECISION = "decision"  # the pseudo-criterion every review has
DECISION_CODES = {"approve": 0, "reject": 1, "correct": 2}
DECISION_LABELS = tuple(DECISION_CODES)


def low_alpha_threshold() -> float:
    return float(getattr(settings, "HITL_AGREEMENT_LOW_ALPHA", 0.667))


def min_units() -> int:
    return int(getattr(settings, "HITL_AGREEMENT_MIN_UNITS", 10))


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True, slots=True)
class Scale:
    """How one criterion's values become numbers, and at which level they are compared."""

    key: str
    label: str
    kind: str  # decision, binary, categorical, graded
    level: str  # nominal or ordinal
    values: tuple[float, ...]  # the whole domain, used or not
    codes: dict  # raw value as the database hands it back -> number

    @classmethod
    def for_decision(cls) -> Scale:
        return cls(DECISION, "Decision", "decision", "nominal", (0.0, 1.0, 2.0), dict(DECISION_CODES))

    @classmethod
    def for_criterion(cls, criterion: dict) -> Scale | None:
        kind = criterion.get("kind")
        key, label = criterion["key"], criterion.get("label", criterion["key"])
        if kind == "binary":  # SQLite's JSON gives 1/0, PostgreSQL's ->> 'true'/'false'
            codes = {True: 1.0, False: 0.0, "true": 1.0, "false": 0.0}  # True == 1: SQLite's 1/0 match too
            return cls(key, label, kind, "nominal", (0.0, 1.0), codes)
        if kind == "categorical":
            options = criterion.get("options", [])
            return cls(
                key,
                label,
                kind,
                "nominal",
                tuple(map(float, range(len(options)))),
                {o: float(i) for i, o in enumerate(options)},
            )
        if kind == "graded":
            points = range(int(criterion["min"]), int(criterion["max"]) + 1)
            codes = {**{p: float(p) for p in points}, **{str(p): float(p) for p in points}}
            return cls(key, label, kind, "ordinal", tuple(map(float, points)), codes)
        return None  # text: read, not compared


@dataclass(frozen=True, slots=True)
class Ratings:
    """The ratings of one criterion as the statistics take them.

    ``units`` and ``values`` are parallel arrays (one entry a rating); ``raters`` names who gave it.
    """

    units: np.ndarray  # int64, 0..n_units-1
    raters: np.ndarray  # int64 user ids
    values: np.ndarray  # float64 codes


def ratings_matrix(units: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A raters x units matrix (NaN where a unit has fewer ratings) from parallel arrays.

    Rows are "the first, second, ... rating of a unit", not people: Krippendorff's alpha
    compares the values within each unit whoever gave them, so production overlap (where
    different people review different outputs) fits without a column per person.
    """
    if units.size == 0:
        return np.empty((0, 0))
    order = np.argsort(units, kind="stable")
    sorted_units = units[order]
    n_units = int(sorted_units[-1]) + 1
    first = np.searchsorted(sorted_units, np.arange(n_units))
    slot = np.arange(sorted_units.size) - first[sorted_units]
    matrix = np.full((int(slot.max()) + 1, n_units), np.nan)
    matrix[slot, sorted_units] = values[order]
    return matrix


@dataclass(frozen=True, slots=True)
class CriterionAgreement:
    """The agreement on one criterion over a set of units."""

    key: str
    label: str
    kind: str
    level: str
    units: int  # units with two ratings or more
    ratings: int
    alpha: float | None
    fleiss_kappa: float | None
    percent_agreement: float | None  # share of pairable units where every rating is the same
    threshold: float
    low: bool  # alpha below the threshold, over enough units

    @property
    def alpha_display(self) -> str:
        return "not enough data" if self.alpha is None else f"{self.alpha:.3f}"


def criterion_agreement(scale: Scale, units: np.ndarray, values: np.ndarray) -> CriterionAgreement:
    """Krippendorff's alpha at the scale's level (and Fleiss' kappa for nominal scales)."""
    matrix = ratings_matrix(units, values)
    threshold = low_alpha_threshold()
    if matrix.size:
        per_unit = (~np.isnan(matrix)).sum(axis=0)
        pairable = matrix[:, per_unit >= 2]
    else:
        per_unit, pairable = np.empty(0), np.empty((0, 0))
    n_pairable = pairable.shape[1] if pairable.ndim == 2 else 0
    alpha = fleiss = percent = None
    if n_pairable:
        alpha = _finite(krippendorff_alpha(pairable, level=scale.level, values=scale.values))
        low, high = np.nanmin(pairable, axis=0), np.nanmax(pairable, axis=0)
        percent = float((low == high).mean())
        counts_per_unit = (~np.isnan(pairable)).sum(axis=0)
        if scale.level == "nominal" and np.all(counts_per_unit == counts_per_unit[0]):
            # Slots fill from the first, so the first ``count`` rows hold every unit's ratings.
            fleiss = _finite(fleiss_kappa(pairable[: counts_per_unit[0]].T, values=scale.values))
    flagged = alpha is not None and n_pairable >= min_units() and alpha < threshold
    return CriterionAgreement(
        key=scale.key,
        label=scale.label,
        kind=scale.kind,
        level=scale.level,
        units=n_pairable,
        ratings=int(per_unit[per_unit >= 2].sum()) if n_pairable else 0,
        alpha=alpha,
        fleiss_kappa=fleiss,
        percent_agreement=percent,
        threshold=threshold,
        low=flagged,
    )


# Reading the rows.


def period_reviews(*, tenant: Tenant, start: datetime | None, end: datetime | None, queue_id: int | None = None):
    """The reviews that count, made in the period (and queue): not escalations.

    Which of them are on outputs reviewed more than once is decided by :func:`criteria_ratings`
    in the same statement that reads them.
    """
    reviews = Review.objects.for_tenant(tenant).exclude(decision=Review.Verdict.ESCALATE)
    if start is not None:
        reviews = reviews.filter(created_at__gte=start)
    if end is not None:
        reviews = reviews.filter(created_at__lt=end)
    if queue_id is not None:
        reviews = reviews.filter(task__queue_id=queue_id)
    return reviews


FETCH_CHUNK = 65_536


def criteria_ratings(queryset, scales: Sequence[Scale], *, with_raters: bool = False) -> dict[str, Ratings]:
    """The ratings of each of ``scales`` among ``queryset``'s reviews of outputs reviewed more than
    once: one statement, one pass over the rows, whatever the number of criteria.

    The statement counts each output's reviews with a window over the same scan (the overlap
    filter), numbers the overlapped outputs with a dense rank (so no UUID crosses into Python)
    and extracts every criterion's value from the scores (JSON text or numbers, as the database
    hands them back). Rows are read in chunks from a server-side cursor on PostgreSQL and coded
    into numpy arrays chunk by chunk, so memory stays near the arrays' size.
    """
    if not scales:
        return {}
    columns = {
        f"v{index}": F("decision") if scale.key == DECISION else KT(f"scores__{scale.key}")
        for index, scale in enumerate(scales)
    }
    who = {"o_who": F("reviewer_id")} if with_raters else {}
    inner = queryset.annotate(
        o_id=F("output_id"), **who, o_n=Window(Count("pk"), partition_by=[F("output_id")]), **columns
    ).values_list("o_id", *who, "o_n", *columns)
    sql, params = inner.query.sql_with_params()
    selected = ", ".join(f"r.{name}" for name in (*who, *columns))
    statement = (
        f"SELECT dense_rank() OVER (ORDER BY r.o_id), {selected} "  # noqa: S608 (our own aliases)
        f"FROM ({sql}) AS r WHERE r.o_n > 1"
    )
    first_value = 2 if with_raters else 1
    units: list[np.ndarray] = []
    raters: list[np.ndarray] = []
    values: list[list[np.ndarray]] = [[] for _ in scales]
    # In a transaction: PostgreSQL's server-side cursor then lives in the transaction that holds
    # the tenant's scope (outside one, Django declares it WITH HOLD in a transaction of its own,
    # where row-level security would show no row).
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(statement, params)
        while chunk := cursor.fetchmany(FETCH_CHUNK):
            columns_of = list(zip(*chunk, strict=True))
            units.append(np.fromiter(columns_of[0], dtype=np.int64, count=len(chunk)))
            if with_raters:
                raters.append(np.fromiter(columns_of[1], dtype=np.int64, count=len(chunk)))
            for index, scale in enumerate(scales):
                coded = map(scale.codes.get, columns_of[first_value + index], repeat(np.nan))
                values[index].append(np.fromiter(coded, dtype=float, count=len(chunk)))
    empty = np.empty(0, dtype=np.int64)
    if not units:
        return {scale.key: Ratings(empty, empty, np.empty(0)) for scale in scales}
    unit_array = np.concatenate(units) - 1
    rater_array = np.concatenate(raters) if with_raters else np.zeros(len(unit_array), dtype=np.int64)
    result = {}
    for scale, parts in zip(scales, values, strict=True):
        value_array = np.concatenate(parts)
        present = ~np.isnan(value_array)  # a criterion left empty (not required) is a missing rating
        result[scale.key] = Ratings(unit_array[present], rater_array[present], value_array[present])
    return result


def criterion_ratings(queryset, scale: Scale, *, with_raters: bool = False) -> Ratings:
    """The ratings of one criterion (or the decision): :func:`criteria_ratings` of one scale."""
    return criteria_ratings(queryset, [scale], with_raters=with_raters)[scale.key]


def scales_of(*, tenant: Tenant, queryset) -> list[Scale]:
    """The decision, then each comparable criterion of the rubric versions the reviews used
    (a key's latest definition wins when versions differ)."""
    scales: dict[str, Scale] = {}
    versions = queryset.exclude(rubric__isnull=True).values_list("rubric_id", "rubric_version").distinct()
    for rubric_id, version in sorted(versions, key=lambda pair: (pair[0], pair[1] or 0)):
        for criterion in rubric_criteria(tenant=tenant, rubric_id=rubric_id, version=version) or []:
            scale = Scale.for_criterion(criterion)
            if scale is not None:
                scales[scale.key] = scale
    return [Scale.for_decision(), *scales.values()]


@dataclass(frozen=True, slots=True)
class AgreementReport:
    """Agreement per criterion over a period (and a queue), as the quality pages show it."""

    start: datetime | None
    end: datetime | None
    queue_id: int | None
    criteria: list[CriterionAgreement]
    threshold: float
    min_units: int

    @property
    def low(self) -> list[CriterionAgreement]:
        return [item for item in self.criteria if item.low]


def queue_agreement(
    *, tenant: Tenant, start: datetime | None = None, end: datetime | None = None, queue_id: int | None = None
) -> AgreementReport:
    """Per criterion, over production overlap reviews of the period (and the queue)."""
    reviews = period_reviews(tenant=tenant, start=start, end=end, queue_id=queue_id)
    scales = scales_of(tenant=tenant, queryset=reviews)
    read = criteria_ratings(reviews, scales)
    figures = [criterion_agreement(scale, read[scale.key].units, read[scale.key].values) for scale in scales]
    return AgreementReport(start, end, queue_id, figures, low_alpha_threshold(), min_units())


# Reviewer pairs and each reviewer against their peers.


@dataclass(frozen=True, slots=True)
class PairAgreement:
    """Two reviewers on the outputs both reviewed: Cohen's kappa (quadratic weights for graded)."""

    reviewer_a: int
    reviewer_b: int
    criterion: str
    units: int
    percent_agreement: float
    kappa: float | None
    weights: str | None


def _pairs(ratings: Ratings) -> dict[tuple[int, int], tuple[list[float], list[float]]]:
    by_unit: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for unit, rater, value in zip(
        ratings.units.tolist(), ratings.raters.tolist(), ratings.values.tolist(), strict=True
    ):
        by_unit[unit].append((rater, value))
    pairs: dict[tuple[int, int], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for rated in by_unit.values():
        for (rater_a, value_a), (rater_b, value_b) in itertools.combinations(sorted(rated), 2):
            first, second = pairs[(rater_a, rater_b)]
            first.append(value_a)
            second.append(value_b)
    return pairs


def reviewer_pair_agreement(
    *,
    tenant: Tenant,
    start: datetime | None = None,
    end: datetime | None = None,
    queue_id: int | None = None,
    criterion: str = DECISION,
) -> list[PairAgreement]:
    """Cohen's kappa of every pair of reviewers who reviewed the same outputs, most shared first."""
    reviews = period_reviews(tenant=tenant, start=start, end=end, queue_id=queue_id)
    scale = next((s for s in scales_of(tenant=tenant, queryset=reviews) if s.key == criterion), None)
    if scale is None:
        return []
    weights = "quadratic" if scale.level == "ordinal" else None
    result = []
    for (rater_a, rater_b), (first, second) in _pairs(criterion_ratings(reviews, scale, with_raters=True)).items():
        a, b = np.asarray(first), np.asarray(second)
        result.append(
            PairAgreement(
                reviewer_a=rater_a,
                reviewer_b=rater_b,
                criterion=scale.key,
                units=len(first),
                percent_agreement=float((a == b).mean()),
                kappa=_finite(cohen_kappa(a, b, weights=weights, values=scale.values)),
                weights=weights,
            )
        )
    return sorted(result, key=lambda pair: (-pair.units, pair.reviewer_a, pair.reviewer_b))


@dataclass(frozen=True, slots=True)
class ReviewerPeerAgreement:
    """One reviewer's decisions against their peers' on the same outputs.

    ``units`` counts the pairs (an output reviewed by three people gives each of them two);
    ``kappa`` is Cohen's kappa of the reviewer's decisions against the peers' over those pairs.
    """

    reviewer: int
    units: int
    percent_agreement: float | None
    kappa: float | None


def reviewer_peer_agreement(
    *,
    tenant: Tenant,
    start: datetime | None = None,
    end: datetime | None = None,
    queue_id: int | None = None,
    criterion: str = DECISION,
) -> dict[int, ReviewerPeerAgreement]:
    """Each reviewer's agreement with peers in the period: user id -> figures.

    The selector the reviewer analytics (issue 13 point 5, "agreement with peers") call,
    one period at a time (a point of a trend line is one call per bucket).
    """
    reviews = period_reviews(tenant=tenant, start=start, end=end, queue_id=queue_id)
    scale = next((s for s in scales_of(tenant=tenant, queryset=reviews) if s.key == criterion), None)
    if scale is None:
        return {}
    mine: dict[int, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for (rater_a, rater_b), (first, second) in _pairs(criterion_ratings(reviews, scale, with_raters=True)).items():
        mine[rater_a][0].extend(first)
        mine[rater_a][1].extend(second)
        mine[rater_b][0].extend(second)
        mine[rater_b][1].extend(first)
    weights = "quadratic" if scale.level == "ordinal" else None
    result = {}
    for reviewer, (own, peers) in mine.items():
        a, b = np.asarray(own), np.asarray(peers)
        result[reviewer] = ReviewerPeerAgreement(
            reviewer=reviewer,
            units=len(own),
            percent_agreement=float((a == b).mean()) if len(own) else None,
            kappa=_finite(cohen_kappa(a, b, weights=weights, values=scale.values)) if len(own) else None,
        )
    return result


# Judges against people, per judge version.


@dataclass(frozen=True, slots=True)
class JudgeVersionAgreement:
    """One judge version's pass/fail against people's final decisions (approved = pass)."""

    judge: int
    judge_name: str
    version: int
    compared: int
    errors: int
    table: tuple[tuple[int, int], tuple[int, int]]  # rows: judge pass, fail; columns: people pass, fail
    percent_agreement: float | None
    kappa: float | None
    flagged: bool = False
    flag: dict | None = field(default=None)


def judge_version_agreement(
    *,
    tenant: Tenant,
    start: datetime | None = None,
    end: datetime | None = None,
    judge_id: int | None = None,
) -> list[JudgeVersionAgreement]:
    """Every judge version's agreement with people on the outputs people decided in the period
    (by the decision's time), one grouped query; by judge name, then version."""
    verdicts = Judgement.objects.for_tenant(tenant).filter(output__decided_by__isnull=False)
    if judge_id is not None:
        verdicts = verdicts.filter(judge_id=judge_id)
    if start is not None:
        verdicts = verdicts.filter(output__decided_at__gte=start)
    if end is not None:
        verdicts = verdicts.filter(output__decided_at__lt=end)
    human_pass = Q(output__decision=Decision.APPROVED)
    human_fail = Q(output__decision__in=[Decision.REJECTED, Decision.CORRECTED])
    judge_pass, judge_fail = Q(result=JudgementResult.PASS), Q(result=JudgementResult.FAIL)
    rows = (
        verdicts.values("judge_id", "judge__name", "judge_version")
        .annotate(
            pp=Count("id", filter=judge_pass & human_pass),
            pf=Count("id", filter=judge_pass & human_fail),
            fp=Count("id", filter=judge_fail & human_pass),
            ff=Count("id", filter=judge_fail & human_fail),
            errors=Count("id", filter=Q(result=JudgementResult.ERROR)),
        )
        .order_by("judge__name", "judge_version")
    )
    result = []
    for row in rows:
        table = ((row["pp"], row["pf"]), (row["fp"], row["ff"]))
        compared = sum(map(sum, table))
        result.append(
            JudgeVersionAgreement(
                judge=row["judge_id"],
                judge_name=row["judge__name"],
                version=row["judge_version"],
                compared=compared,
                errors=row["errors"],
                table=table,
                percent_agreement=(row["pp"] + row["ff"]) / compared if compared else None,
                kappa=_finite(cohen_kappa_table(np.asarray(table, dtype=float))) if compared else None,
            )
        )
    return result


def units_of(values: Iterable[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Parallel (unit, value) arrays from per-unit lists of ratings (tests, calibration)."""
    units, flat = [], []
    for index, ratings in enumerate(values):
        for value in ratings:
            units.append(index)
            flat.append(value)
    return np.asarray(units, dtype=np.int64), np.asarray(flat, dtype=float)
