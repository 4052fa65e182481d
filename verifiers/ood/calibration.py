"""Calibration of the top-class confidence: ECE, MCE, reliability diagram, Brier, NLL.

Binning (Guo et al. 2017): B equal-width bins over (0, 1]; bin b holds the confidences in
((b - 1) / B, b / B]. ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b|.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float | None  # None for an empty bin
    accuracy: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """0-based bin of each confidence; 0 and anything below 1/B land in the first bin."""
    return np.clip(np.ceil(np.asarray(confidence, np.float64) * bins).astype(np.int64) - 1,
                   0, bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray,
                bins: int = 15) -> list[ReliabilityBin]:
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = bin_index(confidence, bins)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    hit_sum = np.bincount(index, weights=correct, minlength=bins)
    out = []
    for b in range(bins):
        n = int(counts[b])
        out.append(ReliabilityBin(
            lower=b / bins, upper=(b + 1) / bins, count=n,
            mean_confidence=float(conf_sum[b] / n) if n else None,
            accuracy=float(hit_sum[b] / n) if n else None))
    return out


def calibration_errors(diagram: list[ReliabilityBin]) -> tuple[float, float]:
    """(expected, maximum) calibration error over the non-empty bins."""
    total = sum(b.count for b in diagram)
    gaps = [(b.count, abs(b.accuracy - b.mean_confidence)) for b in diagram if b.count]
    ece = sum(n * g for n, g in gaps) / total
    return float(ece), float(max(g for _, g in gaps))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = 15) -> float:
    return calibration_errors(reliability(confidence, correct, bins))[0]


def brier_score(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean over samples of sum_k (p_k - onehot_k)^2."""
    onehot = np.zeros_like(probs, dtype=np.float64)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def negative_log_likelihood(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean -log p_y; a probability of exactly 0 is floored at 1e-12 (so NLL <= 27.6)."""
    return float(np.mean(-np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12))))
