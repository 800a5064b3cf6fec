"""Agreement over production overlap reviews equals hitl.statistics on the same matrix."""

import math

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hitl.statistics import cohen_kappa, fleiss_kappa, krippendorff_alpha
from quality.agreement import (
    judge_version_agreement,
    queue_agreement,
    ratings_matrix,
    reviewer_pair_agreement,
    reviewer_peer_agreement,
)
from reviews.models import Review
from tests.quality.conftest import overlap_reviews

DECISIONS = {"approve": 0, "reject": 1, "correct": 2}


def _random_units(seed: int, units: int, raters: int):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=units)
    ratings = []
    for index in range(units):
        unit = []
        for _ in range(raters if index % 3 else 2):  # a third of the outputs get two reviews only
            helpful = int(np.clip(truth[index] + rng.integers(-1, 2), 1, 5))
            correct = bool(rng.random() < (0.9 if truth[index] > 2 else 0.2))
            decision = ["approve", "reject", "correct"][int(rng.integers(0, 3))] if rng.random() < 0.3 else "approve"
            scores = {"correct": correct, "helpful": helpful}
            if rng.random() < 0.5:
                scores["tone"] = "ok" if rng.random() < 0.8 else "rude"
            unit.append((decision, scores))
        ratings.append(unit)
    return ratings


def _matrix(ratings, key, code):
    """raters x units, NaN where missing: the layout of hitl.statistics.krippendorff_alpha."""
    width = max(len(unit) for unit in ratings)
    matrix = np.full((width, len(ratings)), np.nan)
    for column, unit in enumerate(ratings):
        for row, (decision, scores) in enumerate(unit):
            value = decision if key == "decision" else scores.get(key)
            if value is not None:
                matrix[row, column] = code(value)
    return matrix


def _same(product, reference):
    if reference is None or (isinstance(reference, float) and math.isnan(reference)):
        assert product is None
    else:
        assert product == pytest.approx(reference, abs=1e-12)


def test_per_criterion_agreement_equals_the_statistics_on_the_same_matrix(tenant, rubric):
    ratings = _random_units(7, 60, 3)
    overlap_reviews(tenant, rubric, ratings)
    # One output reviewed once only: not overlap, not counted.
    overlap_reviews(tenant, rubric, [[("approve", {"correct": True, "helpful": 5})]], start=500)

    report = {item.key: item for item in queue_agreement(tenant=tenant).criteria}

    assert list(report) == ["decision", "correct", "helpful", "tone"]
    decision = _matrix(ratings, "decision", DECISIONS.get)
    _same(report["decision"].alpha, krippendorff_alpha(decision, level="nominal", values=[0, 1, 2]))
    correct = _matrix(ratings, "correct", float)
    _same(report["correct"].alpha, krippendorff_alpha(correct, level="nominal", values=[0, 1]))
    helpful = _matrix(ratings, "helpful", float)
    _same(report["helpful"].alpha, krippendorff_alpha(helpful, level="ordinal", values=[1, 2, 3, 4, 5]))
    tone = _matrix(ratings, "tone", {"ok": 0.0, "rude": 1.0}.get)
    _same(report["tone"].alpha, krippendorff_alpha(tone, level="nominal", values=[0, 1]))
    assert report["helpful"].level == "ordinal" and report["decision"].level == "nominal"
    assert report["decision"].units == 60 and report["decision"].ratings == 160
    # Units have 2 or 3 reviews: Fleiss' kappa needs as many for every unit, so none.
    assert report["decision"].fleiss_kappa is None


def test_fleiss_kappa_when_every_output_has_as_many_reviews(tenant, rubric):
    ratings = [unit[:2] for unit in _random_units(11, 40, 2)]
    overlap_reviews(tenant, rubric, ratings)

    decision = next(item for item in queue_agreement(tenant=tenant).criteria if item.key == "decision")

    _same(decision.fleiss_kappa, fleiss_kappa(_matrix(ratings, "decision", DECISIONS.get).T, values=[0, 1, 2]))


def test_low_agreement_is_flagged_past_the_minimum_number_of_units(tenant, rubric, settings):
    # Two reviewers who always disagree on "correct": alpha far below 0.667.
    opposite = [
        [("approve", {"correct": bool(i % 2), "helpful": 3}), ("approve", {"correct": not i % 2, "helpful": 3})]
        for i in range(12)
    ]
    overlap_reviews(tenant, rubric, opposite)

    report = queue_agreement(tenant=tenant)

    low = {item.key for item in report.low}
    assert "correct" in low
    assert report.threshold == 0.667
    settings.HITL_AGREEMENT_MIN_UNITS = 50
    assert not queue_agreement(tenant=tenant).low


def test_reviewer_pairs_and_peers_are_cohens_kappa(tenant, rubric):
    ratings = _random_units(3, 45, 3)
    people, _ = overlap_reviews(tenant, rubric, ratings)

    pairs = {(p.reviewer_a, p.reviewer_b): p for p in reviewer_pair_agreement(tenant=tenant)}
    graded = {(p.reviewer_a, p.reviewer_b): p for p in reviewer_pair_agreement(tenant=tenant, criterion="helpful")}
    peers = reviewer_peer_agreement(tenant=tenant)

    first, second, third = (person.pk for person in people)
    decisions = _matrix(ratings, "decision", DECISIONS.get)
    both = ~np.isnan(decisions[0]) & ~np.isnan(decisions[1])
    assert pairs[(first, second)].units == int(both.sum()) == 45
    _same(pairs[(first, second)].kappa, cohen_kappa(decisions[0], decisions[1], values=[0, 1, 2]))
    thirds = ~np.isnan(decisions[2])
    assert pairs[(first, third)].units == int(thirds.sum()) == 30
    _same(pairs[(first, third)].kappa, cohen_kappa(decisions[0][thirds], decisions[2][thirds], values=[0, 1, 2]))
    helpful = _matrix(ratings, "helpful", float)
    _same(
        graded[(first, second)].kappa,
        cohen_kappa(helpful[0], helpful[1], weights="quadratic", values=[1, 2, 3, 4, 5]),
    )
    own = np.concatenate([decisions[0], decisions[0][thirds]])
    others = np.concatenate([decisions[1], decisions[2][thirds]])
    assert peers[first].units == 75
    _same(peers[first].kappa, cohen_kappa(own, others, values=[0, 1, 2]))


def test_ratings_matrix_puts_each_units_ratings_in_its_column():
    matrix = ratings_matrix(np.array([2, 0, 2, 1, 0, 2]), np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))

    expected = np.array([[2.0, 4.0, 1.0], [5.0, np.nan, 3.0], [np.nan, np.nan, 6.0]])
    np.testing.assert_array_equal(matrix, expected)


def test_the_other_tenants_reviews_never_count(tenant, other_tenant, rubric):
    from policies.services import rubric_publish
    from tests.reviews.conftest import RUBRIC

    overlap_reviews(tenant, rubric, _random_units(5, 20, 2))
    other_rubric, _ = rubric_publish(tenant=other_tenant, document=RUBRIC)
    overlap_reviews(other_tenant, other_rubric, _random_units(6, 7, 2), start=100)

    assert queue_agreement(tenant=other_tenant).criteria[0].units == 7
    assert judge_version_agreement(tenant=other_tenant) == []


@pytest.mark.django_db(transaction=True)
def test_the_api_reads_the_rows_outside_a_test_transaction(tenant, rubric):
    """As in production: no transaction around the request. On PostgreSQL the rows are read
    from a server-side cursor, which must live in the transaction that holds the tenant's
    scope (row-level security shows nothing otherwise)."""
    from tests.conftest import make_client

    overlap_reviews(tenant, rubric, _random_units(9, 15, 2))

    body = make_client(tenant, "admin").get("/api/v1/agreement").json()

    decision = next(row for row in body["criteria"] if row["key"] == "decision")
    assert decision["units"] == 15 and decision["alpha"] is not None


def test_every_criterion_is_read_in_one_pass_over_the_reviews(tenant, rubric):
    """The overlap filter, the units and all criteria's values come from one statement: a page
    with four criteria reads the period's reviews twice (the rubric versions used, then the
    ratings), not once per criterion and again for the filter."""
    overlap_reviews(tenant, rubric, _random_units(3, 12, 3))
    with CaptureQueriesContext(connection) as captured:
        report = queue_agreement(tenant=tenant)
    assert [item.key for item in report.criteria] == ["decision", "correct", "helpful", "tone"]
    table = Review._meta.db_table
    reads = [query["sql"] for query in captured.captured_queries if f'"{table}"' in query["sql"]]
    assert len(reads) == 2, reads
    assert all(item.units == 12 for item in report.criteria[:3])
