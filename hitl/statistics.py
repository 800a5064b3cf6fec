"""Agreement statistics: pure functions over arrays (house style rule 23).

Pages and APIs never compute agreement themselves: a selector prepares the ratings as
arrays and calls one of these. Each function is checked in
``tests/hitl/test_statistics.py`` against the worked examples published with the method
(Cohen 1960/1968 as printed by SAS, Fleiss 1971, Krippendorff 2011) and, on random data,
against the reference libraries (scikit-learn, the ``krippendorff`` package).

Conventions, the same for every function:

- Ratings are numbers. Missing ratings are ``NaN`` (a float array) and are allowed only
  where the method allows them (Krippendorff's alpha); Cohen's and Fleiss' kappa refuse
  them with ``ValueError``.
- Category values are compared exactly; the value domain is the sorted set of values that
  occur unless ``values`` names it (needed when a category that nobody used still counts,
  for the weights of Cohen's weighted kappa or the ranks of ordinal alpha).
- When agreement is undefined (one category only, or fewer than two pairable values) the
  result is ``nan``: a caller shows "not enough data", never a made-up 1.0 or 0.0.

Everything is vectorized with numpy: one pass of ``bincount`` builds the contingency or
coincidence matrix, so 1,000,000 units by 3 raters take well under a second
(bench/agreement).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Weights = Literal["linear", "quadratic"] | None
Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")


def _codes(values_seen: np.ndarray, values: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """The value domain (sorted) and each rating's index in it.

    Ratings are nearly always small integers (a 1-5 scale, a binary criterion): those are
    coded in linear time through a lookup table; anything else is sorted.
    """
    named = None
    if values is not None:
        named = np.unique(np.asarray(values, dtype=float))
        if np.isnan(named).any():
            raise ValueError("the value domain cannot contain NaN")
    if values_seen.size:
        low, high = float(values_seen.min()), float(values_seen.max())
        if named is not None and named.size:
            low, high = min(low, float(named[0])), max(high, float(named[-1]))
        if high - low < 65_536 and low == int(low):
            offsets = values_seen - low
            as_int = offsets.astype(np.int64)
            if np.array_equal(as_int, offsets):
                span = int(high - low) + 1
                used = np.bincount(as_int, minlength=span) > 0
                if named is None:
                    in_domain = used
                else:
                    in_domain = np.zeros(span, dtype=bool)
                    named_offsets = named - low
                    integral = named_offsets == np.floor(named_offsets)
                    in_domain[named_offsets[integral].astype(np.int64)] = True
                    if not integral.all():  # a fractional value named: take the general path
                        in_domain = None
                    elif (used & ~in_domain).any():
                        unknown = low + np.flatnonzero(used & ~in_domain)[0]
                        raise ValueError(f"rating {unknown!r} is not in the value domain")
                if in_domain is not None and in_domain.all():  # a contiguous scale: the offsets are the codes
                    return low + np.arange(span, dtype=float), as_int
                if in_domain is not None:
                    lookup = np.cumsum(in_domain) - 1
                    return low + np.flatnonzero(in_domain).astype(float), lookup[as_int]
    if named is None:
        domain = np.unique(values_seen)
    else:
        domain = named
        unknown = ~np.isin(values_seen, domain)
        if unknown.any():
            raise ValueError(f"rating {values_seen[unknown][0]!r} is not in the value domain")
    return domain, np.searchsorted(domain, values_seen)


def _weights(size: int, weights: Weights) -> np.ndarray:
    """Disagreement weights between category indices: 0 on the diagonal, 1 at most."""
    i, j = np.indices((size, size))
    if weights is None:
        return (i != j).astype(float)
    if size < 2:
        return np.zeros((size, size))
    distance = np.abs(i - j) / (size - 1)
    if weights == "linear":
        return distance
    if weights == "quadratic":
        return distance**2
    raise ValueError(f"weights must be None, 'linear' or 'quadratic', not {weights!r}")


def cohen_kappa_table(table: np.ndarray | Sequence[Sequence[float]], *, weights: Weights = None) -> float:
    """Cohen's kappa from a square contingency table (rows: rater A, columns: rater B).

    ``weights`` None is Cohen's (1960) kappa; "linear" and "quadratic" are the weighted
    kappa of Cohen (1968) with disagreement weights |i-j|/(k-1) and its square, the
    categories taken in the table's order.
    """
    observed = np.asarray(table, dtype=float)
    if observed.ndim != 2 or observed.shape[0] != observed.shape[1]:
        raise ValueError("the contingency table must be square")
    total = observed.sum()
    if total <= 0:
        return float("nan")
    observed = observed / total
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    w = _weights(observed.shape[0], weights)
    expected_disagreement = float((w * expected).sum())
    if expected_disagreement == 0:
        return float("nan")
    return 1.0 - float((w * observed).sum()) / expected_disagreement


def cohen_kappa(
    rater_a: Sequence[float] | np.ndarray,
    rater_b: Sequence[float] | np.ndarray,
    *,
    weights: Weights = None,
    values: Sequence[float] | None = None,
) -> float:
    """Cohen's kappa of two raters' ratings of the same units (same order, no missing)."""
    a = np.asarray(rater_a, dtype=float)
    b = np.asarray(rater_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("both raters must rate the same units: two 1-d arrays of one length")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("Cohen's kappa takes no missing ratings; use Krippendorff's alpha")
    domain, codes = _codes(np.concatenate([a, b]), values)
    size = len(domain)
    code_a, code_b = codes[: len(a)], codes[len(a) :]
    table = np.bincount(code_a * size + code_b, minlength=size * size).reshape(size, size)
    return cohen_kappa_table(table, weights=weights)


def fleiss_kappa_counts(counts: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Fleiss' (1971) kappa from a units x categories table of how many raters chose each.

    Every unit must have the same number of ratings (at least two).
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        raise ValueError("counts must be a units x categories table")
    per_unit = table.sum(axis=1)
    raters = per_unit[0]
    if raters < 2 or not np.all(per_unit == raters):
        raise ValueError("Fleiss' kappa needs the same number of ratings (at least 2) for every unit")
    units = table.shape[0]
    agreement = ((table * table).sum(axis=1) - raters) / (raters * (raters - 1))
    mean_agreement = agreement.mean()
    shares = table.sum(axis=0) / (units * raters)
    chance = float((shares * shares).sum())
    if chance == 1.0:
        return float("nan")
    return float((mean_agreement - chance) / (1.0 - chance))


def fleiss_kappa(ratings: np.ndarray | Sequence[Sequence[float]], *, values: Sequence[float] | None = None) -> float:
    """Fleiss' kappa from a units x raters matrix of ratings (no missing ratings)."""
    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2:
        raise ValueError("ratings must be a units x raters matrix")
    if np.isnan(data).any():
        raise ValueError("Fleiss' kappa takes no missing ratings; use Krippendorff's alpha")
    domain, codes = _codes(data.ravel(), values)
    size = len(domain)
    units = data.shape[0]
    unit_index = np.repeat(np.arange(units), data.shape[1])
    counts = np.bincount(unit_index * size + codes, minlength=units * size).reshape(units, size)
    return fleiss_kappa_counts(counts)


def _delta_squared(domain: np.ndarray, totals: np.ndarray, level: Level) -> np.ndarray:
    """Krippendorff's difference function between every pair of values of the domain."""
    c, k = np.meshgrid(domain, domain, indexing="ij")
    if level == "nominal":
        return (c != k).astype(float)
    if level == "interval":
        return (c - k) ** 2
    if level == "ratio":
        if (domain < 0).any():
            raise ValueError("ratio-level alpha needs values of zero or more")
        total = c + k
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(total == 0, 0.0, ((c - k) / np.where(total == 0, 1, total)) ** 2)
        return out
    if level == "ordinal":
        # (sum of n_g for g from c to k) - (n_c + n_k) / 2, squared; ranks by the domain's order.
        cumulative = np.concatenate([[0.0], np.cumsum(totals)])
        i, j = np.indices((len(domain), len(domain)))
        low, high = np.minimum(i, j), np.maximum(i, j)
        between = cumulative[high + 1] - cumulative[low]
        return (between - (totals[i] + totals[j]) / 2.0) ** 2
    raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")


def krippendorff_alpha(
    ratings: np.ndarray | Sequence[Sequence[float]],
    *,
    level: Level = "nominal",
    values: Sequence[float] | None = None,
) -> float:
    """Krippendorff's alpha from a raters x units matrix (``NaN`` where a rater gave none).

    The layout is the one of Krippendorff's "reliability data" and of the ``krippendorff``
    package: one row per rater (coder), one column per unit. Units with fewer than two
    ratings are not pairable and drop out, as the method says.
    """
    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2:
        raise ValueError("ratings must be a raters x units matrix")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    present = ~np.isnan(data)
    unit_of = np.broadcast_to(np.arange(data.shape[1]), data.shape)[present]
    seen = data[present]
    if seen.size == 0:
        return float("nan")
    domain, codes = _codes(seen, values)
    size = len(domain)
    units = data.shape[1]
    counts = np.bincount(unit_of * size + codes, minlength=units * size).reshape(units, size).astype(float)
    pairable = counts.sum(axis=1)
    keep = pairable >= 2
    counts, pairable = counts[keep], pairable[keep]
    if counts.shape[0] == 0:
        return float("nan")
    share = counts / (pairable - 1)[:, None]
    coincidence = counts.T @ share
    # o_ck = sum_u (n_uc * n_uk - [c == k] * n_uc) / (m_u - 1): the diagonal's correction
    # is sum_u n_uc / (m_u - 1), which is share's column sum.
    coincidence[np.diag_indices(size)] -= share.sum(axis=0)
    totals = coincidence.sum(axis=1)
    n = totals.sum()
    delta = _delta_squared(domain, totals, level)
    observed = float((coincidence * delta).sum())
    expected = float((np.outer(totals, totals) * delta).sum()) / (n - 1)
    if expected == 0:
        return float("nan")
    return 1.0 - observed / expected
