"""Deletion and insertion (Petsiuk et al. 2018, RISE): is the attribution faithful to the
model? Input values are taken in order of decreasing attribution; deletion replaces the first
k with the neutral value, insertion puts them into an all-neutral input. The target-class
probability along k = 0, d/S, ..., d (S steps) gives two curves; their areas (trapezoid, k/d
on [0, 1]) are the figures: a faithful map makes deletion drop fast (small area) and
insertion rise fast (large area). Forward passes only, on onnxruntime (the accepted model).
"""

from __future__ import annotations

import numpy as np

from verifiers.model import OnnxRunner


def probabilities(scores: np.ndarray, output_kind: str) -> np.ndarray:
    """Class probabilities from what the model outputs."""
    if output_kind == "probabilities":
        return scores
    if output_kind == "log_probabilities":
        return np.exp(scores)
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def deletion_insertion(runner: OnnxRunner, output_kind: str, x: np.ndarray,
                       target: np.ndarray, attributions: np.ndarray, baseline: float,
                       steps: int, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(deletion AUC, insertion AUC) per sample."""
    n, d = len(x), int(np.prod(x.shape[1:]))
    flat = x.reshape(n, d)
    # Most attributed first; ties in index order, so the order is deterministic.
    order = np.argsort(-attributions.reshape(n, d), axis=1, kind="stable")
    counts = np.round(np.linspace(0.0, 1.0, steps + 1) * d).astype(np.int64)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(d)[None, :].repeat(n, axis=0), axis=1)
    chosen = rank[:, None, :] < counts[None, :, None]          # n x (S+1) x d
    deleted = np.where(chosen, baseline, flat[:, None, :])
    inserted = np.where(chosen, flat[:, None, :], baseline)
    curves = []
    for variant in (deleted, inserted):
        batch = variant.reshape(n * (steps + 1), *x.shape[1:]).astype(np.float32)
        p = probabilities(runner.run(batch, batch_size), output_kind)
        curves.append(p[np.arange(len(p)), np.repeat(target, steps + 1)].reshape(n, steps + 1))
    grid = counts / d
    return tuple(np.trapezoid(c, grid, axis=1) for c in curves)  # type: ignore[return-value]
