"""FAB, targeted (Croce & Hein 2020): minimal-perturbation search along linearised boundaries.

Each step linearises the decision boundary between the label and the target class, projects
both the current iterate and the clean point onto that hyperplane (inside the input box),
and moves to a convex combination biased towards the clean point, with a small overshoot.
Once adversarial, it steps back towards the clean point to shrink the perturbation. Because
it uses the boundary's geometry rather than a loss value, it does not care how logits are
scaled; it complements APGD when losses are flat.

Linf, L2 and L1; a row counts as fooled once an example within eps is found (early stop).
As in APGD, smaller examples are recorded every iteration without a host sync and the batch
is compacted every ``SYNC_EVERY`` iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from verifiers.attacks.ball import Ball, flat_norm, project, random_start
from verifiers.attacks.common import SYNC_EVERY, AttackOutcome, PassCounter, logits_of, point_done
from verifiers.attacks.rowrandom import Randomness, take
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint

FAB_NORMS = ("linf", "l2", "l1")


@dataclass(frozen=True)
class FabConfig:
    iterations: int = 30
    restarts: int = 1
    alpha_max: float = 0.1   # how far one step may pull towards the clean point's projection
    overshoot: float = 1.05
    beta: float = 0.9        # backward step after success: keep 90% of the perturbation


def boundary_step(x: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str,
                  domain: InputDomain) -> torch.Tensor:
    """Smallest delta (in ``norm``) with w.delta >= c and x + delta inside the box.

    The minimiser moves every coordinate along sign(w) by a shared t (Linf) or along w by a
    shared lambda (L2), each capped at the box edge. w.delta is then piecewise linear and
    increasing in that scalar, with a kink where a coordinate saturates: sorting the kinks
    gives the exact scalar in one pass. Rows with c <= 0 need no step; rows that cannot reach
    c inside the box get the farthest corner.
    """
    flat_x, flat_w = x.reshape(len(x), -1), w.reshape(len(w), -1)
    aw = flat_w.abs()
    room = torch.where(flat_w >= 0, domain.high - flat_x, flat_x - domain.low).clamp_min(0)
    if norm == "l1":
        return _l1_step(flat_w, aw, room, c).reshape(x.shape)
    moving = aw > 0
    if norm == "linf":
        kink, slope = room, aw                       # coordinate i saturates at t = room_i
    else:
        kink = torch.where(moving, room / aw.clamp_min(1e-30), torch.zeros_like(room))
        slope = aw * aw                              # ... at lambda = room_i / |w_i|
    kink = torch.where(moving, kink, torch.zeros_like(kink))
    gain = aw * room                                 # w.delta contributed once saturated
    order = kink.argsort(dim=1)
    k_sorted = kink.gather(1, order)
    cum_gain = gain.gather(1, order).cumsum(dim=1)
    rest_slope = slope.sum(dim=1, keepdim=True) - slope.gather(1, order).cumsum(dim=1)
    reach = cum_gain + k_sorted * rest_slope         # w.delta at each kink
    j = (reach < c[:, None]).sum(dim=1)              # first kink at or beyond c
    full = j >= reach.shape[1]
    jm = (j - 1).clamp_min(0)
    base = torch.where(j > 0, cum_gain.gather(1, jm[:, None]).squeeze(1), torch.zeros_like(c))
    slope_left = torch.where(j > 0, rest_slope.gather(1, jm[:, None]).squeeze(1),
                             slope.sum(dim=1))
    scalar = (c - base) / slope_left.clamp_min(1e-30)
    scalar = torch.where(full, k_sorted[:, -1], scalar)
    move = scalar[:, None] * (flat_w.sign() if norm == "linf" else flat_w)
    delta = torch.where(flat_w >= 0, torch.minimum(move, room), torch.maximum(move, -room))
    delta = torch.where((c > 0)[:, None], delta, torch.zeros_like(delta))
    return delta.reshape(x.shape)


def _l1_step(w: torch.Tensor, aw: torch.Tensor, room: torch.Tensor,
             c: torch.Tensor) -> torch.Tensor:
    """L1: spend the budget on the coordinates with the largest |w| first (greedy is exact for
    a linear objective under an L1 budget), each up to its box edge."""
    order = aw.argsort(dim=1, descending=True)
    gain = (aw * room).gather(1, order)
    before = gain.cumsum(dim=1) - gain                  # reached before this coordinate
    need = (c[:, None] - before).clamp_min(0)
    part = torch.minimum(room.gather(1, order),
                         need / aw.gather(1, order).clamp_min(1e-30))
    part = torch.where(aw.gather(1, order) > 0, part, torch.zeros_like(part))
    move = torch.zeros_like(w).scatter(1, order, part)
    delta = move * w.sign()
    return torch.where((c > 0)[:, None], delta, torch.zeros_like(delta))


def fab_targeted(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor,
                 ball: Ball, domain: InputDomain, cfg: FabConfig, generator: Randomness,
                 group: torch.Tensor | None = None) -> AttackOutcome:
    if ball.norm not in FAB_NORMS:
        raise ValueError(f"FAB supports {FAB_NORMS}, not {ball.norm!r}")
    counter = PassCounter()
    group = group if group is not None else torch.arange(len(x), device=x.device)
    found = x.clone()                      # smallest adversarial example per row so far
    found_norm = torch.full((len(x),), float("inf"), device=x.device)
    groups = (group, int(group.max()) + 1 if len(group) else 0)
    for restart in range(cfg.restarts):
        rows = torch.nonzero(~point_done(found_norm <= ball.eps, *groups)).squeeze(1)
        if len(rows) == 0:
            break
        start = None if restart == 0 else random_start(
            x[rows], Ball(ball.norm, ball.eps / 2), domain, take(generator, rows), restart)
        _search(model, x, y, target, groups, rows, start, ball, domain, cfg, found, found_norm,
                counter)
    fooled = found_norm <= ball.eps
    # A minimal example just outside the ball may still fool once pulled back onto it.
    near = torch.nonzero(torch.isfinite(found_norm) & ~fooled).squeeze(1)
    if len(near):
        pulled = project(x[near], found[near], ball, domain)
        hit = logits_of(model, pulled, counter).argmax(1) != y[near]
        found[near[hit]] = pulled[hit]
        fooled[near[hit]] = True
    x_adv = torch.where(fooled.reshape(-1, *([1] * (x.dim() - 1))), found, x)
    return AttackOutcome(x_adv.detach(), fooled, counter.forward, counter.backward)


def _search(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, t_all: torch.Tensor,
            groups: tuple[torch.Tensor, int], rows: torch.Tensor, start: torch.Tensor | None,
            ball: Ball, domain: InputDomain, cfg: FabConfig, found: torch.Tensor,
            found_norm: torch.Tensor, counter: PassCounter) -> None:
    x0, y, t = x_all[rows], y_all[rows], t_all[rows]
    x = x0.clone() if start is None else start
    expand = (-1, *([1] * (x0.dim() - 1)))
    for k in range(cfg.iterations):
        checkpoint()
        if len(rows) == 0:
            return
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        diff = logits.gather(1, t[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
        (w,) = torch.autograd.grad(diff.sum(), xg)
        counter.forward += len(x)
        counter.backward += len(x)
        with torch.no_grad():
            f = diff.detach()
            d_cur = boundary_step(x, w, -f, ball.norm, domain)
            c_orig = -f - (w * (x0 - x)).reshape(len(x), -1).sum(dim=1)
            d_orig = boundary_step(x0, w, c_orig, ball.norm, domain)
            n_cur, n_orig = flat_norm(d_cur, ball.norm), flat_norm(d_orig, ball.norm)
            a = torch.clamp(n_cur / (n_cur + n_orig + 1e-12), max=cfg.alpha_max).reshape(expand)
            x_new = ((1 - a) * (x + cfg.overshoot * d_cur)
                     + a * (x0 + cfg.overshoot * d_orig)).clamp(domain.low, domain.high)
            adv = logits_of(model, x_new, counter).argmax(1) != y
            size = flat_norm(x_new - x0, ball.norm)
            better = adv & (size < found_norm[rows])
            found.index_copy_(0, rows, torch.where(better.reshape(expand), x_new, found[rows]))
            found_norm.index_copy_(0, rows, torch.where(better, size, found_norm[rows]))
            # After a success, step back towards the clean point to shrink the perturbation.
            x = torch.where(adv.reshape(expand), (1 - cfg.beta) * x0 + cfg.beta * x_new, x_new)
            if (k + 1) % SYNC_EVERY == 0:
                keep = ~point_done(found_norm <= ball.eps, *groups)[rows]
                if not bool(keep.all()):
                    rows, x0, y, t, x = rows[keep], x0[keep], y[keep], t[keep], x[keep]
