"""Agreement statistics against the worked examples published with each method, and
against the reference libraries on random data (house style rule 23)."""

import math

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from hitl.statistics import (
    cohen_kappa,
    cohen_kappa_table,
    fleiss_kappa,
    fleiss_kappa_counts,
    krippendorff_alpha,
)

NAN = float("nan")

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four
# observers, twelve units, values 1-5, with missing values. Rows are observers.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]

# Fleiss (1971), table 1: 30 patients, 6 psychiatrists, 5 diagnoses (as the ratings of
# each patient; Fleiss printed the counts). Published kappa: 0.430.
FLEISS_1971 = [
    [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
    [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
    [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
    [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
    [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
    [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
    [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
    [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
]  # fmt: skip

# The worked example of Fleiss' kappa most often reprinted: 10 subjects, 14 raters,
# 5 categories, counts per category; kappa 0.210.
FLEISS_COUNTS_EXAMPLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]  # fmt: skip

# A 3x3 table whose simple and linearly weighted kappa SAS's PROC FREQ prints as
# 0.4842 and 0.4701 (the example statsmodels checks itself against).
SAS_TABLE = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_reproduces_krippendorffs_worked_example(level, published):
    assert krippendorff_alpha(KRIPPENDORFF_2011, level=level) == pytest.approx(published, abs=5e-4)


def test_fleiss_kappa_reproduces_fleiss_1971():
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.430, abs=5e-4)
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.4302445, abs=1e-7)  # R irr::kappam.fleiss


def test_fleiss_kappa_from_counts_reproduces_the_textbook_example():
    assert fleiss_kappa_counts(FLEISS_COUNTS_EXAMPLE) == pytest.approx(0.210, abs=5e-4)


def test_cohen_kappa_reproduces_sas_simple_and_weighted():
    assert cohen_kappa_table(SAS_TABLE) == pytest.approx(0.4842, abs=5e-5)
    assert cohen_kappa_table(SAS_TABLE, weights="linear") == pytest.approx(0.4701, abs=5e-5)


def test_cohen_kappa_of_ratings_equals_the_kappa_of_their_table():
    # Cohen (1960)'s two-category illustration as usually reprinted: 20 yes/yes,
    # 5 yes/no, 10 no/yes, 15 no/no; kappa 0.4.
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_a_category_nobody_used_changes_weighted_kappa_only_when_named():
    # Nobody chose 3: unnamed, 2 and 4 are neighbours; named, they are two steps apart.
    a, b = [1, 2, 4, 4, 2, 1, 1], [1, 4, 4, 2, 2, 1, 2]
    without = cohen_kappa(a, b, weights="linear")
    with_unused = cohen_kappa(a, b, weights="linear", values=[1, 2, 3, 4])
    assert without == pytest.approx(cohen_kappa_score(a, b, weights="linear"))  # sklearn: by rank
    assert with_unused == pytest.approx(cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4]))
    assert with_unused != pytest.approx(without)


def test_undefined_agreement_is_nan_not_a_made_up_figure():
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))
    assert math.isnan(fleiss_kappa([[2, 2], [2, 2]]))
    assert math.isnan(krippendorff_alpha([[1, NAN], [NAN, 2]]))  # no unit has two ratings
    assert math.isnan(krippendorff_alpha([[3, 3], [3, 3]]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cohen_kappa([1, 2], [1]), "same units"),
        (lambda: cohen_kappa([1, NAN], [1, 2]), "no missing"),
        (lambda: fleiss_kappa([[1, NAN], [1, 2]]), "no missing"),
        (lambda: fleiss_kappa_counts([[2, 0], [1, 0]]), "same number"),
        (lambda: krippendorff_alpha([[1, 2]], level="nominalish"), "level must be"),
        (lambda: krippendorff_alpha([[1, -2], [1, 2]], level="ratio"), "zero or more"),
        (lambda: cohen_kappa([1, 5], [1, 2], values=[1, 2, 3]), "not in the value domain"),
        (lambda: cohen_kappa_table([[1, 2, 3]]), "square"),
    ],
)
def test_bad_input_is_refused_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


ratings_2xn = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 5), min_size=n, max_size=n),
        st.lists(st.integers(1, 5), min_size=n, max_size=n),
    )
)


@settings(max_examples=150, deadline=None)
@given(ratings_2xn, st.sampled_from([None, "linear", "quadratic"]))
def test_cohen_kappa_agrees_with_scikit_learn(pair, weights):
    a, b = pair
    labels = sorted(set(a) | set(b))
    expected = cohen_kappa_score(a, b, weights=weights, labels=labels) if len(labels) > 1 else NAN
    got = cohen_kappa(a, b, weights=weights)
    if math.isnan(expected) or math.isnan(got):
        assert math.isnan(expected) and math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-9)


reliability = st.integers(min_value=2, max_value=5).flatmap(
    lambda raters: st.integers(min_value=2, max_value=30).flatmap(
        lambda units: st.lists(
            st.lists(st.one_of(st.integers(1, 6).map(float), st.just(NAN)), min_size=units, max_size=units),
            min_size=raters,
            max_size=raters,
        )
    )
)


@settings(max_examples=150, deadline=None)
@given(reliability, st.sampled_from(["nominal", "ordinal", "interval", "ratio"]))
def test_krippendorff_alpha_agrees_with_the_krippendorff_package(data, level):
    array = np.array(data, dtype=float)
    present = ~np.isnan(array)
    pairable = present.sum(axis=0) >= 2
    values_in_pairable_units = np.unique(array[:, pairable][present[:, pairable]])
    got = krippendorff_alpha(array, level=level)
    if len(values_in_pairable_units) < 2:
        assert math.isnan(got) or got == pytest.approx(1.0)
        return
    expected = krippendorff.alpha(reliability_data=array, level_of_measurement=level)
    assert got == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_agrees_with_the_counts_form_and_is_one_for_perfect_agreement():
    rng = np.random.default_rng(7)
    ratings = rng.integers(1, 4, size=(200, 3))
    counts = np.stack([(ratings == v).sum(axis=1) for v in (1, 2, 3)], axis=1)
    assert fleiss_kappa(ratings) == pytest.approx(fleiss_kappa_counts(counts))
    assert fleiss_kappa([[1, 1, 1], [2, 2, 2], [3, 3, 3]]) == pytest.approx(1.0)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_values_that_are_not_small_integers_take_the_general_path_with_the_same_result(level):
    data = np.array([[0.5, 1.5, 2.25, 0.5, NAN], [0.5, 2.25, 2.25, 1.5, 1.5], [1.5, 1.5, NAN, 0.5, 1.5]])
    assert krippendorff_alpha(data, level=level) == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement=level), abs=1e-9
    )
    shifted = data * 1000 + 10**6  # integers, but too far apart for the lookup table
    if level != "ratio":
        assert krippendorff_alpha(shifted, level=level) == pytest.approx(krippendorff_alpha(data, level=level))
