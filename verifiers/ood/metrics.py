"""Detection metrics, our own numpy: AUROC, FPR at a TPR level, AUPR (average precision).

Conventions (recorded in every scorecard): the in-distribution samples are the POSITIVE
class and a higher score means "more in-distribution". Ties are handled the way scikit-learn
handles them: all samples sharing a score enter the curve together at one threshold.
"""

from __future__ import annotations

import numpy as np

from verifiers.errors import DataError


def _curve(score_in: np.ndarray, score_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (false positives, true positives) at every distinct threshold, high to low."""
    score_in = np.asarray(score_in, dtype=np.float64).ravel()
    score_out = np.asarray(score_out, dtype=np.float64).ravel()
    if len(score_in) == 0 or len(score_out) == 0:
        raise DataError("detection metrics need at least one in- and one out-of-distribution score")
    scores = np.concatenate([score_in, score_out])
    if np.any(np.isnan(scores)):
        raise DataError("detection scores contain NaN")
    labels = np.concatenate([np.ones(len(score_in)), np.zeros(len(score_out))])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # The last index of each run of equal scores: one operating point per distinct threshold.
    # (Compare, not diff: inf - inf is NaN and would split a run of infinite scores.)
    last = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]
    tps = np.cumsum(labels)[last]
    fps = (last + 1) - tps
    return fps, tps


def roc(score_in: np.ndarray, score_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, starting at (0, 0); no point dropped."""
    fps, tps = _curve(score_in, score_out)
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def auroc(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids: a tie counts one half)."""
    fpr, tpr = roc(score_in, score_out)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def fpr_at_tpr(score_in: np.ndarray, score_out: np.ndarray, level: float = 0.95) -> float:
    """Fraction of OOD inputs accepted at the highest threshold accepting >= level of ID.

    Read off the full ROC curve (every distinct threshold, as roc_curve with
    drop_intermediate=False): the first point whose TPR reaches the level.
    """
    fpr, tpr = roc(score_in, score_out)
    return float(fpr[int(np.searchsorted(tpr, level, side="left"))])


def average_precision(score_in: np.ndarray, score_out: np.ndarray) -> float:
    """AUPR-In as average precision: sum over thresholds of (recall step) x precision."""
    fps, tps = _curve(score_in, score_out)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def fpr_key(tpr_level: float) -> str:
    """Metric name of the FPR at a TPR level: 0.95 -> "fpr95"."""
    return f"fpr{round(tpr_level * 100):d}"


def detection_metrics(score_in: np.ndarray, score_out: np.ndarray,
                      tpr_level: float = 0.95) -> dict[str, float]:
    return {"auroc": auroc(score_in, score_out),
            fpr_key(tpr_level): fpr_at_tpr(score_in, score_out, tpr_level),
            "aupr": average_precision(score_in, score_out)}
