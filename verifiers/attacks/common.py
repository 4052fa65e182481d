"""What every gradient attack shares: its outcome record and a counted loss-and-gradient call."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from verifiers.attacks.losses import attack_loss
from verifiers.interrupt import checkpoint

# Iterations between compactions of an attack's batch (APGD, FAB): dropping finished rows
# needs their count on the host, a device-to-host sync that stalls the GPU's queue.
SYNC_EVERY = 8


@dataclass
class AttackOutcome:
    x_adv: torch.Tensor       # per row: the example found, else the clean input
    fooled: torch.Tensor      # bool per row, as judged by the torch model
    forward_passes: int
    backward_passes: int


@dataclass
class PassCounter:
    """Per-sample forward and backward passes (the figure RobustBench reports)."""

    forward: int = 0
    backward: int = 0


def loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str,
                  target: torch.Tensor | None, eot: int,
                  counter: PassCounter) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-sample loss, logits, gradient), averaged over ``eot`` draws for random models."""
    total_loss = torch.zeros(len(x), device=x.device)
    total_logits: torch.Tensor | None = None
    total_grad = torch.zeros_like(x)
    for _ in range(max(1, eot)):
        checkpoint()
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        per_sample = attack_loss(loss, logits, y, target)
        (grad,) = torch.autograd.grad(per_sample.sum(), xg)
        total_loss += per_sample.detach()
        total_grad += grad
        total_logits = logits.detach() if total_logits is None else total_logits + logits.detach()
        counter.forward += len(x)
        counter.backward += len(x)
    n = float(max(1, eot))
    assert total_logits is not None
    return total_loss / n, total_logits / n, total_grad / n


def logits_of(model: nn.Module, x: torch.Tensor, counter: PassCounter) -> torch.Tensor:
    with torch.no_grad():
        counter.forward += len(x)
        return model(x)


def point_done(row_done: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per row: is any row of its point (``group``) done? No host sync."""
    hits = torch.zeros(n_groups, dtype=torch.int32, device=group.device)
    hits.index_add_(0, group, row_done.to(torch.int32))  # integer sums: exact on any device
    return (hits > 0)[group]
