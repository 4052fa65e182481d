"""Targeted attacks run one row per (point, target class), all targets of a point in one
batch; a point is broken when any of its rows is."""

from __future__ import annotations

from collections.abc import Callable

import torch

from verifiers.attacks.common import AttackOutcome
from verifiers.attacks.losses import top_targets
from verifiers.attacks.rowrandom import Randomness, RowRandom

# (rows x, rows y, target per row, point id per row, randomness) -> outcome per row
RowAttack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Randomness],
                     AttackOutcome]


def over_targets(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, k: int,
                 generator: Randomness, attack: RowAttack) -> AttackOutcome:
    """Run ``attack`` towards the top-``k`` other classes of every point, folded back to
    points: the first fooled copy wins."""
    with torch.no_grad():
        targets = top_targets(model(x), y, k)
    k = targets.shape[1]
    rows_x, rows_y = x.repeat_interleave(k, dim=0), y.repeat_interleave(k)
    group = torch.arange(len(x), device=x.device).repeat_interleave(k)
    if isinstance(generator, RowRandom):
        generator = generator.repeat(k)
    out = attack(rows_x, rows_y, targets.reshape(-1), group, generator)
    return _per_point(out, x, k, len(x))


def _per_point(out: AttackOutcome, x: torch.Tensor, k: int, n: int) -> AttackOutcome:
    fooled_rows = out.fooled.reshape(n, k)
    fooled = fooled_rows.any(dim=1)
    first = fooled_rows.float().argmax(dim=1)
    pick = torch.arange(n, device=x.device) * k + first
    x_adv = torch.where(fooled.reshape(-1, *([1] * (x.dim() - 1))), out.x_adv[pick], x)
    return AttackOutcome(x_adv, fooled, out.forward_passes + n, out.backward_passes)
