"""Re-check every claimed adversarial example on the ORIGINAL model with onnxruntime.

An example counts only if it lies in the perturbation ball (Linf, L2 or L1, measured in
float64), inside the valid input range, and onnxruntime misclassifies it. Anything else is
discarded (and counted, for the record).
"""

from __future__ import annotations

import numpy as np

from verifiers.attacks.ball import Ball, numpy_norm
from verifiers.data import InputDomain
from verifiers.model.runtime import OnnxRunner

# float32 rounding of x + delta can overshoot the ball by an ulp; allow that much, no more.
_TOLERANCE = 1e-6


def recheck(runner: OnnxRunner, x: np.ndarray, x_adv: np.ndarray, y: np.ndarray, ball: Ball,
            domain: InputDomain) -> np.ndarray:
    """Boolean mask of examples confirmed adversarial."""
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    size = numpy_norm(x_adv - x, ball.norm)
    in_ball = size <= ball.eps * (1 + _TOLERANCE) + _TOLERANCE
    flat_adv = x_adv.reshape(len(x), -1)
    in_range = (flat_adv.min(axis=1) >= domain.low - _TOLERANCE) & (
        flat_adv.max(axis=1) <= domain.high + _TOLERANCE)
    finite = np.isfinite(flat_adv).all(axis=1)
    wrong = runner.predict(np.nan_to_num(x_adv)) != y
    return in_ball & in_range & finite & wrong


def recheck_linf(runner: OnnxRunner, x: np.ndarray, x_adv: np.ndarray, y: np.ndarray,
                 eps: float, domain: InputDomain) -> np.ndarray:
    """The Linf case (kept for callers of the first battery)."""
    return recheck(runner, x, x_adv, y, Ball("linf", eps), domain)
