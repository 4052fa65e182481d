"""Confidence bounds for figures judged on a sample (DESIGN: PASS needs the lower bound, FAIL
the upper one, in between is INCONCLUSIVE).

The interval ``[low, high]`` at level ``c`` is two one-sided bounds, each holding with
probability ``c`` (so ``[low, high]`` is a two-sided ``2c - 1`` interval): a ``>=`` criterion
PASSes when ``low`` clears the threshold and FAILs when ``high`` misses it, each with error
at most ``1 - c``.

- a fraction ``k / n`` of samples: exact Clopper-Pearson bounds (beta quantiles);
- the worst of several groups' fractions: ``[min low_g, min high_g]`` with every group's
  bounds at the Bonferroni level ``1 - (1 - c) / G``, so they hold for all groups at once;
- a ratio of group fractions (worst over best): a seeded, stratified bootstrap; resampling a
  group's 0/1 outcomes with replacement is a Binomial(n_g, k_g / n_g) draw, so the counts
  suffice and the interval can be recomputed from the scorecard alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_DRAWS = 4000
BOOTSTRAP_SEED = 20240914


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    n: int          # samples behind it (all groups together for a worst / ratio figure)
    method: str     # "clopper-pearson", "clopper-pearson-bonferroni", "bootstrap"


def _check_level(confidence: float) -> None:
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")


def clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    """One-sided lower and upper Clopper-Pearson bounds on a proportion, each at ``confidence``."""
    _check_level(confidence)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    from scipy.stats import beta  # imported here: scipy.stats is slow to import

    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))
    return low, high


def worst_interval(counts: Sequence[Sequence[int]], confidence: float) -> Interval:
    """Bounds on the smallest true fraction among groups with ``(k_g, n_g)`` successes."""
    _check_level(confidence)
    if not counts:
        raise ValueError("no groups")
    level = 1.0 - (1.0 - confidence) / len(counts)
    bounds = [clopper_pearson(int(k), int(n), level) for k, n in counts]
    return Interval(min(b[0] for b in bounds), min(b[1] for b in bounds),
                    sum(int(n) for _, n in counts),
                    "clopper-pearson" if len(counts) == 1 else "clopper-pearson-bonferroni")


def ratio_interval(counts: Sequence[Sequence[int]], confidence: float,
                   seed: int = BOOTSTRAP_SEED, draws: int = BOOTSTRAP_DRAWS) -> Interval:
    """Bootstrap bounds on worst-over-best group fraction (0 when every group scores 0)."""
    _check_level(confidence)
    if len(counts) < 2:
        raise ValueError("a ratio needs at least two groups")
    k = np.array([c[0] for c in counts], dtype=np.int64)
    n = np.array([c[1] for c in counts], dtype=np.int64)
    rng = np.random.default_rng(seed)
    p = rng.binomial(n[None, :], (k / n)[None, :], size=(draws, len(n))) / n[None, :]
    best = p.max(axis=1)
    ratio = np.divide(p.min(axis=1), best, out=np.zeros(draws), where=best > 0)
    low, high = np.quantile(ratio, [1.0 - confidence, confidence])
    return Interval(float(low), float(high), int(n.sum()), "bootstrap")


def ratio(counts: Sequence[Sequence[int]]) -> float:
    fractions = [k / n for k, n in counts]
    best = max(fractions)
    return min(fractions) / best if best > 0 else 0.0
