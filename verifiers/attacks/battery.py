"""The cascade: each attack runs only on the points every earlier attack failed on.

A point counts as broken once any attack finds an example that onnxruntime confirms on the
original model (``recheck``); robust accuracy is therefore the pointwise worst case over the
battery, never an average. Order: the cheap, strong gradient attacks first (PGD if budgeted,
APGD-CE, APGD-DLR, APGD-T over the top-k classes, FAB-T), then Square, which needs only
scores and so also runs when the torch conversion is not trusted (onnxruntime answers it
then; on a GPU the verified module does, see verifiers.attacks.queries).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from verifiers.attacks import lp as _lp  # noqa: F401  (fills the attack registry)
from verifiers.attacks import registry
from verifiers.attacks.ball import Ball
from verifiers.attacks.budget import Budget
from verifiers.attacks.recheck import recheck
from verifiers.attacks.registry import AttackCall
from verifiers.attacks.rowrandom import Randomness, RowRandom, take
from verifiers.attacks.target import Target
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint

__all__ = ["LP_ATTACKS", "CascadeResult", "Target", "cascade", "supported"]

log = logging.getLogger(__name__)

# Every registered Lp attack, in cascade order (verifiers.attacks.lp fills the registry).
LP_ATTACKS = tuple(a.name for a in registry.lp_attacks())


@dataclass
class CascadeResult:
    fooled: np.ndarray                 # bool per row, confirmed on onnxruntime
    x_adv: np.ndarray                  # the confirmed example (the clean row elsewhere)
    broken_by: np.ndarray              # attack name per row ('' where none succeeded)
    successes: dict[str, int] = field(default_factory=dict)
    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def supported(attack: str, norm: str, white_box: bool) -> str:
    """'' if ``attack`` can run for ``norm``, else why not."""
    return registry.get(attack).unsupported(norm, white_box)


def cascade(target: Target, x: np.ndarray, y: np.ndarray, ball: Ball, domain: InputDomain,
            budget: Budget, attacks: tuple[str, ...], rand: Randomness) -> CascadeResult:
    """Run the selected Lp attacks on one batch, in cascade, every success re-checked.

    With a ``RowRandom`` (one sample id per row) each attack draws a point's randomness from
    that point's id alone, so the cascade finds every point an attack would find alone.
    """
    res = CascadeResult(np.zeros(len(x), dtype=bool), x.copy(), np.full(len(x), "", dtype=object))
    for lp in (a for a in registry.lp_attacks() if a.name in attacks):
        checkpoint()
        attack = lp.name
        why = lp.unsupported(ball.norm, target.module is not None)
        if why:
            res.skipped[attack] = why
            continue
        alive = np.flatnonzero(~res.fooled)
        if len(alive) == 0:
            break
        t0 = time.perf_counter()
        sub = take(rand, torch.from_numpy(alive))
        if isinstance(sub, RowRandom):
            sub = sub.salted(lp.salt)
        out = lp.run(AttackCall(target, x[alive], y[alive], ball, domain, budget, sub))
        claimed, x_adv, fwd, bwd = out.fooled, out.x_adv, out.forward, out.backward
        res.forward[attack] = res.forward.get(attack, 0) + fwd
        res.backward[attack] = res.backward.get(attack, 0) + bwd
        confirmed = np.zeros(len(alive), dtype=bool)
        if claimed.any():
            confirmed[claimed] = recheck(target.checker, x[alive][claimed], x_adv[claimed],
                                         y[alive][claimed], ball, domain)
        res.rejected += int(claimed.sum() - confirmed.sum())
        res.seconds[attack] = res.seconds.get(attack, 0.0) + time.perf_counter() - t0
        hit = alive[confirmed]
        res.fooled[hit] = True
        res.x_adv[hit] = x_adv[confirmed]
        res.broken_by[hit] = attack
        res.successes[attack] = res.successes.get(attack, 0) + len(hit)
        log.debug("%s eps=%g: %d/%d broken", attack, ball.eps, len(hit), len(alive))
    return res
