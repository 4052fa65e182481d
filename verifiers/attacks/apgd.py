"""Auto-PGD (Croce & Hein 2020): PGD with momentum and a step size that adapts itself.

The step size starts at 2 eps and is halved at checkpoints (after 22%, then ever shorter
stretches of the budget) whenever fewer than rho of the steps since the last checkpoint
increased the loss, or the best loss stalled without a halving; the iterate then restarts
from the best point. No step size to tune, which is what makes it a fair default.

Rows are dropped from the batch once they are misclassified (early stop), and a ``group`` id
ties copies of one point together (a point attacked towards several target classes at once):
once any copy is fooled, all copies stop. Successes are recorded every iteration without a
host sync (the first adversarial iterate of a row is kept); the batch is compacted only every
``SYNC_EVERY`` iterations, since each compaction waits for the device. A fooled row may thus
run a few more iterations; rows never interact, so a point's result still does not depend on
its batch-mates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from verifiers.attacks.ball import Ball, ascent_direction, initial_step, project, random_start
from verifiers.attacks.common import (
    SYNC_EVERY,
    AttackOutcome,
    PassCounter,
    loss_and_grad,
    point_done,
)
from verifiers.attacks.rowrandom import Randomness, take
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint


@dataclass(frozen=True)
class ApgdConfig:
    iterations: int = 50
    restarts: int = 1
    loss: str = "ce"              # see losses.LOSSES
    random_start: bool = True     # False starts at the clean point (sanity: zero gradients stall)
    rho: float = 0.75
    momentum: float = 0.75
    eot: int = 1                  # gradient samples per step (>1 only for randomised models)


def checkpoints(iterations: int) -> set[int]:
    """Iterations after which the step size may be halved."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * iterations) for q in p[1:] if math.ceil(q * iterations) < iterations}


def apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ball: Ball, domain: InputDomain,
         cfg: ApgdConfig, generator: Randomness, target: torch.Tensor | None = None,
         group: torch.Tensor | None = None) -> AttackOutcome:
    """Attack each row; ``target`` (one class per row) for the targeted losses."""
    counter = PassCounter()
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    group = group if group is not None else torch.arange(len(x), device=x.device)
    n_groups = int(group.max()) + 1 if len(group) else 0  # one sync per call, not per step
    for restart in range(cfg.restarts):
        alive = torch.nonzero(~point_done(fooled, group, n_groups)).squeeze(1)
        if len(alive) == 0:
            break
        use_random = cfg.random_start or restart > 0
        _one_run(model, x, y, target, (group, n_groups), alive, ball, domain, cfg,
                 take(generator, alive), restart, use_random, best, fooled, counter)
    return AttackOutcome(best.detach(), fooled, counter.forward, counter.backward)


Groups = tuple[torch.Tensor, int]  # point id per row, number of points


def _one_run(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor,
             t_all: torch.Tensor | None, group: Groups, rows: torch.Tensor, ball: Ball,
             domain: InputDomain, cfg: ApgdConfig, rand: Randomness, draw: int,
             use_random: bool, best: torch.Tensor, fooled: torch.Tensor,
             counter: PassCounter) -> None:
    x0 = x_all[rows]
    x = random_start(x0, ball, domain, rand, draw) if use_random else x0.clone()
    for stage_ball, iterations, final in _stages(ball, cfg.iterations):
        x0 = x_all[rows]
        x = project(x0, x, stage_ball, domain)
        rows, x = _stage(model, x_all, y_all, t_all, group, rows, x, stage_ball, domain, cfg,
                         iterations, final, best, fooled, counter)
        if len(rows) == 0:
            return


def _stages(ball: Ball, iterations: int) -> list[tuple[Ball, int, bool]]:
    """L1 starts on larger balls (3 eps, 2 eps) and shrinks to eps (Croce & Hein 2021):
    sparse L1 steps get stuck in the box corners otherwise. Other norms: one stage."""
    if ball.norm != "l1" or iterations < 10:
        return [(ball, iterations, True)]
    first = max(1, int(0.3 * iterations))
    return [(Ball("l1", 3 * ball.eps), first, False), (Ball("l1", 2 * ball.eps), first, False),
            (ball, iterations - 2 * first, True)]


def _stage(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor,
           t_all: torch.Tensor | None, group: Groups, rows: torch.Tensor,
           x: torch.Tensor, ball: Ball, domain: InputDomain, cfg: ApgdConfig, iterations: int,
           final: bool, best: torch.Tensor, fooled: torch.Tensor, counter: PassCounter
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD iterations on one ball; only the ``final`` stage counts successes.
    Returns the rows still running and their best point."""
    x0, y = x_all[rows], y_all[rows]
    t = t_all[rows] if t_all is not None else None
    loss, logits, grad = loss_and_grad(model, x, y, cfg.loss, t, cfg.eot, counter)
    state = {"x0": x0, "y": y, "x": x, "x_prev": x.clone(), "loss": loss, "grad": grad,
             "best_loss": loss.clone(), "x_best": x.clone(), "grad_best": grad.clone(),
             "step": torch.full((len(x),), initial_step(ball.norm) * ball.eps, device=x.device),
             "succ": torch.zeros(len(x), device=x.device),
             "best_at_ckpt": loss.clone(),
             "reduced": torch.ones(len(x), dtype=torch.bool, device=x.device)}
    if t is not None:
        state["t"] = t
    if final:
        _record(rows, state, logits, best, fooled)
        rows, state = _compact(rows, state, group, fooled)
    marks, last_mark = checkpoints(iterations), 0
    for k in range(iterations):
        checkpoint()
        if len(rows) == 0:
            break
        s = state
        a = 1.0 if k == 0 else cfg.momentum
        step = s["step"].reshape(-1, *([1] * (x0.dim() - 1)))
        direction = ascent_direction(s["grad"], ball.norm, s["x"], s["x0"], domain)
        z = project(s["x0"], s["x"] + step * direction, ball, domain)
        x_new = project(s["x0"], s["x"] + a * (z - s["x"]) + (1 - a) * (s["x"] - s["x_prev"]),
                        ball, domain)
        loss, logits, grad = loss_and_grad(model, x_new, s["y"], cfg.loss, s.get("t"),
                                           cfg.eot, counter)
        s["succ"] += (loss > s["loss"]).float()
        s["x_prev"], s["x"], s["loss"], s["grad"] = s["x"], x_new, loss, grad
        better = loss > s["best_loss"]
        s["best_loss"] = torch.where(better, loss, s["best_loss"])
        s["x_best"] = torch.where(_rows(better, x_new), x_new, s["x_best"])
        s["grad_best"] = torch.where(_rows(better, grad), grad, s["grad_best"])
        if k + 1 in marks:
            _checkpoint(s, cfg.rho * (k + 1 - last_mark))
            last_mark = k + 1
        if final:
            _record(rows, s, logits, best, fooled)
            if (k + 1) % SYNC_EVERY == 0:
                rows, state = _compact(rows, s, group, fooled)
    return rows, state["x_best"]


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row mask shaped to broadcast over ``like``."""
    return mask.reshape(-1, *([1] * (like.dim() - 1)))


def _checkpoint(s: dict[str, torch.Tensor], min_successes: float) -> None:
    """Halve the step where progress stalled, and restart those rows from their best point."""
    stalled = s["succ"] < min_successes
    no_gain = ~s["reduced"] & (s["best_at_ckpt"] >= s["best_loss"])
    halve = stalled | no_gain
    s["reduced"] = halve
    s["best_at_ckpt"] = s["best_loss"].clone()
    s["step"] = torch.where(halve, s["step"] / 2, s["step"])
    back = _rows(halve, s["x"])
    s["x"] = torch.where(back, s["x_best"], s["x"])
    s["x_prev"] = torch.where(back, s["x_best"], s["x_prev"])
    s["grad"] = torch.where(back, s["grad_best"], s["grad"])
    s["succ"].zero_()


def _record(rows: torch.Tensor, s: dict[str, torch.Tensor], logits: torch.Tensor,
            best: torch.Tensor, fooled: torch.Tensor) -> None:
    """Keep each row's first misclassified iterate (no host sync)."""
    hit = logits.argmax(dim=1) != s["y"]
    new = hit & ~fooled[rows]
    best.index_copy_(0, rows, torch.where(_rows(new, best), s["x"].detach(), best[rows]))
    fooled.index_copy_(0, rows, fooled[rows] | hit)


def _compact(rows: torch.Tensor, s: dict[str, torch.Tensor], group: Groups,
             fooled: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Keep only rows whose point is still unbroken (one host sync)."""
    keep = ~point_done(fooled, *group)[rows]
    if bool(keep.all()):
        return rows, s
    return rows[keep], {k: v[keep] for k, v in s.items()}
