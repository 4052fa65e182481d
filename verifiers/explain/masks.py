"""Does the model use the evidence, or the background? With an evidence mask per sample
(the evaluation set's optional ``mask``: True where the evidence for the label lies):

- relevance mass in the mask (Arras et al. 2022, "CLEVR-XAI"): the fraction of the positive
  attribution that falls inside the mask, per sample (samples with no positive attribution
  are left out and counted);
- accuracy with the background removed: every value outside the mask set to the standard's
  neutral value, on onnxruntime; a model that reads a background cue (a watermark, a
  hospital tag) loses accuracy that a model reading the object keeps;
- accuracy with the background swapped: the values outside the mask taken from another
  sample (one of another label where there is one, drawn with a seeded generator), so a
  background cue now points at the wrong class.
"""

from __future__ import annotations

import numpy as np
import torch

from verifiers.model import OnnxRunner


def relevance_mass(attributions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per sample: positive attribution inside the mask / all positive attribution; NaN
    where there is no positive attribution."""
    pos = np.clip(attributions, 0.0, None).reshape(len(attributions), -1).astype(np.float64)
    inside = (pos * mask.reshape(len(mask), -1)).sum(axis=1)
    total = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def donors(y: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """For each sample, another sample to take the background from, uniformly among those of
    another label (any other sample when every label is the same; itself when alone)."""
    n = len(y)
    order = np.argsort(y, kind="stable")
    labels, starts, sizes = np.unique(y[order], return_index=True, return_counts=True)
    block = np.searchsorted(labels, y)
    u = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
    start, size = starts[block], sizes[block]
    pool = n - size
    r = np.minimum((u * np.maximum(pool, 1)).astype(np.int64), np.maximum(pool - 1, 0))
    picked = order[np.where(r < start, r, r + size)] if (pool > 0).all() else None
    if picked is None:  # one label only: any other sample
        r = np.minimum((u * max(n - 1, 1)).astype(np.int64), max(n - 2, 0))
        idx = np.arange(n)
        picked = np.where(r < idx, r, r + 1) if n > 1 else idx
    return picked


def background_accuracy(runner: OnnxRunner, x: np.ndarray, y: np.ndarray, mask: np.ndarray,
                        background: np.ndarray | float, batch_size: int = 256) -> np.ndarray:
    """Which samples are still classified correctly with the background replaced."""
    replaced = np.where(mask, x, background).astype(np.float32)
    return runner.predict(replaced, batch_size) == y
