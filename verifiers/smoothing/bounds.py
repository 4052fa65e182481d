"""The statistics of a smoothing certificate (Cohen, Rosenfeld & Kolter 2019, Theorem 1).

If the base classifier returns class A under Gaussian noise N(0, sigma^2 I) with probability
at least pA > 1/2, the smoothed classifier returns A everywhere within L2 radius
``sigma * Phi^-1(pA)``. pA is not known: CERTIFY uses the one-sided Clopper-Pearson lower bound
on it at level 1 - alpha (verifiers.groups.clopper_pearson, the same exact bound the standards
use), so each certificate is wrong with probability at most alpha over the noise drawn.
PREDICT abstains unless a two-sided binomial test says the top class beats the runner-up.
"""

from __future__ import annotations

import math

from verifiers.groups import clopper_pearson


def _phi_inv(p: float) -> float:
    from scipy.stats import norm  # imported here: scipy.stats is slow to import

    return float(norm.ppf(p))


def p_lower(count: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a class's probability under noise
    (statsmodels' ``proportion_confint(count, n, alpha=2 * alpha, method="beta")[0]``)."""
    return clopper_pearson(count, n, 1.0 - alpha)[0]


def radius(p: float, sigma: float) -> float:
    """The certified L2 radius for a class probability lower bound ``p`` (>= 1/2)."""
    if not 0.5 <= p <= 1.0:
        raise ValueError(f"a radius needs 1/2 <= p <= 1, got {p}")
    return sigma * _phi_inv(p) if p < 1.0 else math.inf


def max_radius(sigma: float, n: int, alpha: float) -> float:
    """The largest radius ``n`` noise samples can certify at level alpha: every sample votes
    for the class, and the Clopper-Pearson bound is then alpha^(1/n)."""
    return sigma * _phi_inv(alpha ** (1.0 / n))


def predict_test(top: int, runner_up: int, alpha: float) -> bool:
    """PREDICT's test: may the top class be returned (else abstain)? Two-sided binomial test
    of ``top`` successes in ``top + runner_up`` trials against p = 1/2, p-value <= alpha."""
    from scipy.stats import binomtest

    if top + runner_up == 0:
        return False
    return bool(binomtest(top, top + runner_up, 0.5).pvalue <= alpha)
