"""Agreement statistics at volume: hitl.statistics against a bare numpy computation.

1,000,000 units rated by 3 raters on a 5-point scale (5 % of ratings missing for
Krippendorff's alpha). Each statistic is timed through ``hitl.statistics`` (validation,
value domain, NaN handling included) and through the shortest numpy code that computes
the same figure from the same float ratings (1..5, NaN where missing), in the same run; the ratio is the cost of the
product's function. Peak memory is the process's maximum RSS (goal: under 500 MB).

    .venv/bin/python bench/agreement/run.py [--units 1000000] [--raters 3] [--repeat 5]
"""

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from hitl.statistics import cohen_kappa, fleiss_kappa, krippendorff_alpha


def bare_alpha_nominal(ratings: np.ndarray, size: int) -> float:
    """ratings: raters x units of 1..size, NaN where missing."""
    units = ratings.shape[1]
    present = ~np.isnan(ratings)
    unit_of = np.broadcast_to(np.arange(units), ratings.shape)[present]
    codes = ratings[present].astype(np.int64) - 1
    counts = np.bincount(unit_of * size + codes, minlength=units * size).reshape(units, size)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    share = counts / (m - 1)[:, None]
    o = counts.T @ share
    o[np.diag_indices(size)] -= share.sum(axis=0)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d_o = o.sum() - np.trace(o)
    d_e = (n * n - (n_c * n_c).sum()) / (n - 1)
    return 1 - d_o / d_e


def bare_cohen(a: np.ndarray, b: np.ndarray, size: int) -> float:
    a, b = a.astype(np.int64) - 1, b.astype(np.int64) - 1
    table = np.bincount(a * size + b, minlength=size * size).reshape(size, size) / len(a)
    p_o = np.trace(table)
    p_e = table.sum(axis=1) @ table.sum(axis=0)
    return (p_o - p_e) / (1 - p_e)


def bare_fleiss(ratings: np.ndarray, size: int) -> float:
    units, raters = ratings.shape
    codes = ratings.astype(np.int64) - 1
    counts = np.bincount(np.repeat(np.arange(units), raters) * size + codes.ravel(), minlength=units * size)
    counts = counts.reshape(units, size)
    p_i = ((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1))
    p_j = counts.sum(axis=0) / (units * raters)
    return (p_i.mean() - (p_j * p_j).sum()) / (1 - (p_j * p_j).sum())


def best_of(repeat: int, fn) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--raters", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    truth = rng.integers(0, 5, size=args.units)
    noise = rng.integers(-1, 2, size=(args.raters, args.units)) * (rng.random((args.raters, args.units)) < 0.3)
    codes = np.clip(truth + noise, 0, 4)  # raters x units, agreeing mostly
    missing = rng.random(codes.shape) < 0.05
    ratings = (codes + 1).astype(float)
    ratings_missing = ratings.copy()
    ratings_missing[missing] = np.nan

    print(
        f"load average (1 min): {os.getloadavg()[0]:.1f}; "
        f"units {args.units:,}, raters {args.raters}, best of {args.repeat}"
    )
    rows = [
        (
            "Krippendorff's alpha, nominal, 5 % missing",
            lambda: krippendorff_alpha(ratings_missing, level="nominal"),
            lambda: bare_alpha_nominal(ratings_missing, 5),
        ),
        (
            "Fleiss' kappa",
            lambda: fleiss_kappa(ratings.T),
            lambda: bare_fleiss(ratings.T, 5),
        ),
        (
            "Cohen's kappa, raters 1 and 2",
            lambda: cohen_kappa(ratings[0], ratings[1]),
            lambda: bare_cohen(ratings[0], ratings[1], 5),
        ),
    ]
    for name, product, bare in rows:
        t_product, v_product = best_of(args.repeat, product)
        t_bare, v_bare = best_of(args.repeat, bare)
        assert abs(v_product - v_bare) < 1e-9, (name, v_product, v_bare)
        print(
            f"{name:45s}: {t_product * 1000:8.1f} ms  bare numpy {t_bare * 1000:8.1f} ms  "
            f"= {t_product / t_bare:.2f}x  (value {v_product:.4f})"
        )
    for level in ("ordinal", "interval", "ratio"):
        t, v = best_of(args.repeat, lambda level=level: krippendorff_alpha(ratings_missing, level=level))
        label = "Krippendorff's alpha, " + level
        print(f"{label:45s}: {t * 1000:8.1f} ms  (value {v:.4f})")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run: {peak_mb:.0f} MB (goal: under 500 MB)")


if __name__ == "__main__":
    main()
