"""PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter 2019 (Certified Adversarial Robustness via
Randomized Smoothing, Algorithm "certify"/"predict"), over a set of samples.

CERTIFY: draw N0 noisy copies and take the most frequent class A (selection); draw N fresh
copies and count A (estimation); pA_lower = Clopper-Pearson lower bound at 1 - alpha; abstain
if pA_lower < 1/2, else certify A within L2 radius sigma * Phi^-1(pA_lower).

PREDICT: the top two classes of N noisy copies; return the top one if a two-sided binomial
test rejects "they are equally likely" at alpha, else abstain. Here PREDICT reads CERTIFY's N
estimation draws instead of drawing N more (each procedure's guarantee holds on its own; they
are just not independent of each other), which halves the cost of the smoothed clean accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verifiers.smoothing.bounds import p_lower, predict_test, radius
from verifiers.smoothing.config import SmoothingConfig
from verifiers.smoothing.sampling import (
    ESTIMATION,
    SELECTION,
    BaseClassifier,
    noise_counts,
    sample_seed,
)

ABSTAIN = -1


@dataclass(frozen=True)
class Certificates:
    """Per certified sample (arrays of the same length): CERTIFY's class (ABSTAIN = -1), its
    L2 radius (0 when abstaining), the probability lower bound, and PREDICT's class."""

    index: np.ndarray        # which evaluation samples
    certified_class: np.ndarray
    radius: np.ndarray
    p_lower: np.ndarray
    predicted_class: np.ndarray


def certify_one(base: BaseClassifier, x: torch.Tensor, cfg: SmoothingConfig, seed: int,
                index: int) -> tuple[int, float, float, int]:
    """(certified class or ABSTAIN, radius, pA_lower, PREDICT's class or ABSTAIN)."""
    selection = noise_counts(base, x, cfg.n0, cfg.sigma, sample_seed(seed, index, SELECTION),
                             cfg.batch)
    top = int(selection.argmax())
    counts = noise_counts(base, x, cfg.n, cfg.sigma, sample_seed(seed, index, ESTIMATION),
                          cfg.batch)
    p = p_lower(int(counts[top]), cfg.n, cfg.alpha)
    first, second = np.argsort(-counts, kind="stable")[:2]
    predicted = int(first) if predict_test(int(counts[first]), int(counts[second]),
                                           cfg.alpha) else ABSTAIN
    if p < 0.5:
        return ABSTAIN, 0.0, p, predicted
    return top, radius(p, cfg.sigma), p, predicted


def certify_samples(base: BaseClassifier, x: np.ndarray, index: np.ndarray,
                    cfg: SmoothingConfig, seed: int,
                    progress: Callable[[float], None] = lambda _f: None) -> Certificates:
    """CERTIFY and PREDICT for the samples ``x[index]`` (the standard's input units)."""
    out = np.zeros((len(index), 4))
    for k, i in enumerate(index.tolist()):
        progress(k / max(len(index), 1))
        row = torch.from_numpy(np.array(x[i], dtype=np.float32)).to(base.device)  # x may be mapped
        out[k] = certify_one(base, row, cfg, seed, i)
    return Certificates(index=index, certified_class=out[:, 0].astype(np.int64),
                        radius=out[:, 1], p_lower=out[:, 2],
                        predicted_class=out[:, 3].astype(np.int64))
