"""Projected gradient descent with a fixed step (Madry et al. 2018).

Kept for standards that budget it (``budget.pgd``); APGD supersedes it in the default battery.
Batched, random start from an explicit seeded generator, keeps the per-sample first
misclassifying iterate across steps and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from verifiers.attacks.ball import Ball, ascent_direction, project, random_start
from verifiers.attacks.common import AttackOutcome
from verifiers.attacks.rowrandom import Randomness
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint

__all__ = ["AttackOutcome", "PgdConfig", "pgd", "pgd_linf"]


@dataclass(frozen=True)
class PgdConfig:
    eps: float
    steps: int = 20
    restarts: int = 1
    step_size: float | None = None  # default: 2.5 * eps / steps

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ball: Ball, cfg: PgdConfig,
        domain: InputDomain, generator: Randomness) -> AttackOutcome:
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    fwd = bwd = 0
    for restart in range(cfg.restarts):
        x_adv = random_start(x, ball, domain, generator, restart)
        for _ in range(cfg.steps):
            checkpoint()
            x_adv.requires_grad_(True)
            logits = model(x_adv)
            loss = F.cross_entropy(logits, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            fwd += len(x)
            bwd += len(x)
            with torch.no_grad():
                newly = (logits.argmax(1) != y) & ~fooled
                best[newly] = x_adv.detach()[newly]
                fooled |= newly
                step = cfg.alpha * ascent_direction(grad, ball.norm, x_adv, x, domain)
                x_adv = project(x, x_adv.detach() + step, ball, domain)
        with torch.no_grad():
            logits = model(x_adv)
            fwd += len(x)
            newly = (logits.argmax(1) != y) & ~fooled
            best[newly] = x_adv[newly]
            fooled |= newly
    return AttackOutcome(best.detach(), fooled, fwd, bwd)


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PgdConfig,
             domain: InputDomain, generator: torch.Generator) -> AttackOutcome:
    return pgd(model, x, y, Ball("linf", cfg.eps), cfg, domain, generator)
