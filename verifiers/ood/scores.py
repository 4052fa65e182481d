"""OOD scores from model outputs: maximum softmax probability, max logit, energy.

Sign convention, the same for every score: HIGHER = MORE IN-DISTRIBUTION.
- msp: max_k softmax(z)_k (Hendrycks & Gimpel 2017).
- max_logit: max_k z_k (Hendrycks et al. 2022).
- energy: -E(x) = logsumexp_k z_k, with E(x) = -logsumexp(z) (Liu et al. 2020).

A row with NaN or infinite outputs gets NaN scores here; :func:`conservative` later ranks
such a sample as the detector's failure (rejected if in-distribution, accepted if not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES: tuple[str, ...] = ("msp", "max_logit", "energy")
SIGN_CONVENTION = "higher score = more in-distribution (energy score is -E(x) = logsumexp)"
DEFINITIONS = {
    "msp": "max_k softmax(z)_k, from the model's probabilities",
    "max_logit": "max_k z_k",
    "energy": "-E(x) = logsumexp_k z_k (E(x) = -logsumexp, Liu et al. 2020)",
}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def logsumexp(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1)
    return top + np.log(np.exp(z - top[:, None]).sum(axis=1))


@dataclass(frozen=True)
class Scores:
    """Per-sample scores; max_logit / energy are None when logits are not identifiable."""

    msp: np.ndarray
    max_logit: np.ndarray | None
    energy: np.ndarray | None
    non_finite: np.ndarray  # bool per sample: the model produced NaN or inf

    def get(self, name: str) -> np.ndarray | None:
        return getattr(self, name)


def scores_from(probs: np.ndarray, logits: np.ndarray | None) -> Scores:
    """Scores from probabilities (always) and logits (when the model's logits are known)."""
    probs = np.asarray(probs, dtype=np.float64)
    bad = ~np.all(np.isfinite(probs), axis=1)
    if logits is not None:
        bad |= ~np.all(np.isfinite(logits), axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        msp = np.where(bad, np.nan, probs.max(axis=1))
        max_logit = energy = None
        if logits is not None:
            max_logit = np.where(bad, np.nan, np.asarray(logits, np.float64).max(axis=1))
            energy = np.where(bad, np.nan, logsumexp(np.where(bad[:, None], 0.0, logits)))
    return Scores(msp=msp, max_logit=max_logit, energy=energy, non_finite=bad)


def conservative(score: np.ndarray, in_distribution: bool) -> np.ndarray:
    """Replace NaN scores by the worst case for the detector."""
    worst = -np.inf if in_distribution else np.inf
    return np.where(np.isnan(score), worst, score)


def confidence_summary(msp: np.ndarray) -> dict[str, float]:
    """Mean and max top-class probability; a non-finite output counts as confidence 1."""
    conf = np.where(np.isnan(msp), 1.0, msp)
    return {"mean_confidence": float(conf.mean()), "max_confidence": float(conf.max())}
