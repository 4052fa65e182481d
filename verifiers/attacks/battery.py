"""The cascade: each attack runs only on the points every earlier attack failed on.

A point counts as broken once any attack finds an example that onnxruntime confirms on the
original model (``recheck``); robust accuracy is therefore the pointwise worst case over the
battery, never an average. Order: the cheap, strong gradient attacks first (PGD if budgeted,
APGD-CE, APGD-DLR, APGD-T over the top-k classes, FAB-T), then Square through onnxruntime,
which needs no gradients and so also runs when the torch conversion is not trusted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from verifiers.attacks.apgd import ApgdConfig, apgd
from verifiers.attacks.ball import Ball
from verifiers.attacks.budget import Budget
from verifiers.attacks.common import AttackOutcome
from verifiers.attacks.fab import FAB_NORMS, FabConfig, fab_targeted
from verifiers.attacks.losses import top_targets
from verifiers.attacks.pgd import PgdConfig, pgd
from verifiers.attacks.recheck import recheck
from verifiers.attacks.rowrandom import Randomness, RowRandom, numpy_rng, take
from verifiers.attacks.square import SQUARE_NORMS, SquareConfig, square
from verifiers.data import InputDomain
from verifiers.model.runtime import OnnxRunner

log = logging.getLogger(__name__)

LP_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")


@dataclass
class Target:
    """What the cascade attacks: a differentiable module (or None) and the original model."""

    module: nn.Module | None
    runner: OnnxRunner
    output_kind: str
    device: torch.device
    eot: int = 1
    # The model as uploaded, for the re-check (``runner`` may be intake's batch-normalised
    # copy, verified equal on probes but not the original bytes).
    reference: OnnxRunner | None = None
    # onnxruntime on the graph with its softmax head cut: the margins a saturated softmax
    # hides from a score-based attack (Square), where intake could cut the head.
    logits: OnnxRunner | None = None

    @property
    def checker(self) -> OnnxRunner:
        return self.reference or self.runner

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Logit-like scores from onnxruntime: the cut graph's logits when there is one, else
        the log of the probabilities (same margins until float32 saturates)."""
        if self.logits is not None:
            return self.logits.run(x, batch_size=1024)
        out = self.runner.run(x, batch_size=1024)
        return np.log(np.clip(out, 1e-30, None)) if self.output_kind == "probabilities" else out


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
    if attack in ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t") and not white_box:
        return "needs gradients: no trusted torch module"
    if attack == "fab-t" and norm not in FAB_NORMS:
        return f"FAB supports {FAB_NORMS}"
    if attack == "square" and norm not in SQUARE_NORMS:
        return f"Square supports {SQUARE_NORMS}"
    return ""


def cascade(target: Target, x: np.ndarray, y: np.ndarray, ball: Ball, domain: InputDomain,
            budget: Budget, attacks: tuple[str, ...], rand: Randomness) -> CascadeResult:
    """Run the selected Lp attacks on one batch, in cascade, every success re-checked.

    With a ``RowRandom`` (one sample id per row) each attack draws a point's randomness from
    that point's id alone, so the cascade finds every point an attack would find alone.
    """
    res = CascadeResult(np.zeros(len(x), dtype=bool), x.copy(), np.full(len(x), "", dtype=object))
    for attack in (a for a in LP_ATTACKS if a in attacks):
        why = supported(attack, ball.norm, target.module is not None)
        if why:
            res.skipped[attack] = why
            continue
        alive = np.flatnonzero(~res.fooled)
        if len(alive) == 0:
            break
        t0 = time.perf_counter()
        sub = take(rand, torch.from_numpy(alive))
        if isinstance(sub, RowRandom):
            sub = sub.salted(LP_ATTACKS.index(attack))
        claimed, x_adv, fwd, bwd = _run_one(attack, target, x[alive], y[alive], ball, domain,
                                            budget, sub)
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


def _run_one(attack: str, target: Target, x: np.ndarray, y: np.ndarray, ball: Ball,
             domain: InputDomain, budget: Budget, generator: Randomness
             ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(claimed mask, candidate examples, forward passes, backward passes)."""
    if attack == "square":
        cfg = SquareConfig(budget.square.queries, budget.square.p_init)
        out = square(target.scores, x, y, ball, domain, cfg, numpy_rng(generator, 5))
        return out.fooled, out.x_adv, out.queries, 0
    assert target.module is not None
    xt = torch.from_numpy(x).to(target.device)
    yt = torch.from_numpy(y).to(target.device)
    outcome = _gradient_attack(attack, target, xt, yt, ball, domain, budget, generator)
    return (outcome.fooled.cpu().numpy(), outcome.x_adv.cpu().numpy(),
            outcome.forward_passes, outcome.backward_passes)


def _gradient_attack(attack: str, target: Target, x: torch.Tensor, y: torch.Tensor, ball: Ball,
                     domain: InputDomain, budget: Budget, generator: Randomness
                     ) -> AttackOutcome:
    model = target.module
    assert model is not None
    if attack == "pgd":
        cfg = PgdConfig(ball.eps, budget.pgd.steps, budget.pgd.restarts)
        return pgd(model, x, y, ball, cfg, domain, generator)
    if attack in ("apgd-ce", "apgd-dlr"):
        b = budget.apgd_ce if attack == "apgd-ce" else budget.apgd_dlr
        cfg = ApgdConfig(b.iterations, b.restarts, loss=attack[5:], eot=target.eot)
        return apgd(model, x, y, ball, domain, cfg, generator)
    # Targeted: one row per (point, target class), all targets of a point in one batch.
    b = budget.apgd_t if attack == "apgd-t" else budget.fab_t
    with torch.no_grad():
        targets = top_targets(model(x), y, b.targets)
    k = targets.shape[1]
    rows_x, rows_y = x.repeat_interleave(k, dim=0), y.repeat_interleave(k)
    group = torch.arange(len(x), device=x.device).repeat_interleave(k)
    if isinstance(generator, RowRandom):
        generator = generator.repeat(k)
    if attack == "apgd-t":
        cfg = ApgdConfig(b.iterations, b.restarts, loss="dlr-targeted", eot=target.eot)
        out = apgd(model, rows_x, rows_y, ball, domain, cfg, generator, targets.reshape(-1),
                   group)
    else:
        fcfg = FabConfig(b.iterations, b.restarts)
        out = fab_targeted(model, rows_x, rows_y, targets.reshape(-1), ball, domain, fcfg,
                           generator, group)
    return _per_point(out, x, k, len(x))


def _per_point(out: AttackOutcome, x: torch.Tensor, k: int, n: int) -> AttackOutcome:
    """Fold (point x target) rows back to points: the first fooled copy wins."""
    fooled_rows = out.fooled.reshape(n, k)
    fooled = fooled_rows.any(dim=1)
    first = fooled_rows.float().argmax(dim=1)
    pick = torch.arange(n, device=x.device) * k + first
    x_adv = torch.where(fooled.reshape(-1, *([1] * (x.dim() - 1))), out.x_adv[pick], x)
    return AttackOutcome(x_adv, fooled, out.forward_passes + n, out.backward_passes)
