"""Per-sample attack losses on logits (larger = closer to a misclassification).

DLR (difference of logits ratio, Croce & Hein 2020) is invariant to shifting and rescaling
the logits, so a model cannot hide behind saturated softmax or scaled-up logits the way it
can with cross-entropy. Models with too few classes for the ratio fall back to the margin.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "dlr", "ce-targeted", "dlr-targeted")


def _best_other(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    masked = logits.scatter(1, y[:, None], float("-inf"))
    return masked.amax(dim=1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{j != y} z_j - z_y: positive exactly when the sample is misclassified."""
    return _best_other(logits, y) - logits.gather(1, y[:, None]).squeeze(1)


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] < 3:
        return margin(logits, y)
    top = logits.sort(dim=1, descending=True).values
    return margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    gap = logits.gather(1, t[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
    if logits.shape[1] < 4:
        return gap
    top = logits.sort(dim=1, descending=True).values
    return gap / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def attack_loss(name: str, logits: torch.Tensor, y: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
    if name == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if name == "dlr":
        return dlr(logits, y)
    if target is None:
        raise ValueError(f"loss {name!r} needs a target class per sample")
    if name == "ce-targeted":
        return -F.cross_entropy(logits, target, reduction="none")
    if name == "dlr-targeted":
        return dlr_targeted(logits, y, target)
    raise ValueError(f"unknown loss {name!r}; use one of {LOSSES}")


def top_targets(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k) the k highest-scoring classes other than the label, best first."""
    masked = logits.scatter(1, y[:, None], float("-inf"))
    k = min(k, logits.shape[1] - 1)
    return masked.topk(k, dim=1).indices
