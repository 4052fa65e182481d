"""Attacked robust accuracy: the adaptive battery at every eps of every threat model.

For each threat model (the first is primary: plain metric names) and each eps in increasing
order, the cascade (verifiers.attacks.battery) attacks the points still robust at the
previous eps; an example found at a smaller radius also lies in the larger ball. Every counted
example is re-checked on onnxruntime. ``autoattack-standard`` (pyautoattack, as published)
runs on the same points when selected; robust accuracy is then the pointwise worst case of
both, and AutoAttack's own figure is kept as ``autoattack.robust_accuracy@<eps>``.

White-box attacks differentiate the torch module, wrapped with BPDA (straight-through) where
the graph has gradient-breaking ops and averaged over EOT samples where it is random. Such a
model, or one without a trusted torch module (only Square runs), is reported INCONCLUSIVE:
this check sets its status itself. The ``sanity`` check that runs next may also set it to
inconclusive (gradient-masking symptoms); see verifiers/checks/sanity.py.

Left in ``ctx.per_sample`` per eps label (norm-qualified for non-primary threat models):
``attacked_robust@L`` (bool per sample), ``adversarial_examples@L`` ({"index", "x_adv"}:
confirmed examples, clean-correct points only), ``broken_by@L`` (attack name per sample).
Spatial (grid of rotations/translations) and corruption sweeps run on onnxruntime.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verifiers.attacks import masking
from verifiers.attacks.autoattack_std import autoattack_standard
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import LP_ATTACKS, Target, cascade, supported
from verifiers.attacks.budget import GRADIENT_ATTACKS
from verifiers.attacks.corruptions import corruption_sweep
from verifiers.attacks.recheck import recheck
from verifiers.attacks.rowrandom import RowRandom
from verifiers.attacks.spatial import spatial_attack
from verifiers.checks.context import RunContext
from verifiers.scorecard import CheckResult
from verifiers.standards import ThreatModel

NAME = "adversarial"
SALT = 1
AA = "autoattack-standard"
log = logging.getLogger(__name__)


@dataclass
class _Tally:
    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: int = 0

    def add(self, attack: str, fwd: int, bwd: int, seconds: float) -> None:
        self.forward[attack] = self.forward.get(attack, 0) + fwd
        self.backward[attack] = self.backward.get(attack, 0) + bwd
        self.seconds[attack] = self.seconds.get(attack, 0.0) + seconds


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    assert ctx.correct is not None, "the clean check runs first"
    std = ctx.standard
    probe = torch.from_numpy(ctx.eval_set.x[:64]).to(ctx.device)
    surf = masking.surface(ctx.model.proto, ctx.model.info.output_name, ctx.module,
                           ctx.white_box_reason, probe, std.budget.eot)
    target = Target(surf.module, ctx.model.runner, ctx.model.info.output_kind, ctx.device,
                    surf.eot, reference=ctx.model.original)
    metrics: dict[str, Any] = {}
    tally = _Tally()
    curves: dict[str, list[dict[str, Any]]] = {}
    steps = sum(len(tm.eps) for tm in std.threats)
    done = 0
    with _model_randomness(ctx, surf.eot > 1):
        for i, tm in enumerate(std.threats):
            curves[tm.norm] = _threat_curve(ctx, target, tm, i == 0, metrics, tally,
                                            lambda f, d=done: ctx.progress((d + f) / steps))
            done += len(tm.eps)
    _non_lp(ctx, metrics, tally)
    lp = [a for a in std.attacks if a in LP_ATTACKS or a == AA]
    fwd = sum(v for a, v in tally.forward.items() if a in lp)
    bwd = sum(v for a, v in tally.backward.items() if a in lp)
    metrics.update(forward_passes=fwd, backward_passes=bwd,
                   rejected_by_recheck=tally.rejected, masking_ops=len(surf.findings))
    for attack in tally.forward:
        metrics[f"passes.{attack}.forward"] = tally.forward[attack]
        metrics[f"passes.{attack}.backward"] = tally.backward[attack]
    status, reason = _status(surf, lp)
    # Wall times are logged, not recorded: the scorecard must be identical for the same seed.
    log.info("attack seconds: %s", {k: round(v, 2) for k, v in tally.seconds.items()})
    details = {
        "attacks": list(std.attacks), "budget": std.budget.as_dict(),
        "threat_models": [{"norm": tm.norm, "eps": [e.label for e in tm.eps]}
                          for tm in std.threats],
        "curves": curves, "skipped": tally.skipped,
        "white_box": surf.module is not None,
        "masking": {"ops": [f.label() for f in surf.findings], "bpda": surf.adapted,
                    "unhandled": surf.unhandled, "eot_samples": surf.eot},
        "recheck": "every counted example re-run on onnxruntime (ball, range, label)",
        "sanity": "see checks.sanity (it can set this check inconclusive)",
        # Counted examples are confirmed on onnxruntime, so these only over-state robustness:
        # a miss stays a FAIL when this check is inconclusive (verifiers.standards.evaluate).
        # Not on a random graph, where one confirmed draw proves nothing about the next.
        "upper_bounds": [] if any(f.remedy == "eot" for f in surf.findings)
        else ["robust_accuracy@*", "*.robust_accuracy@*"],
    }
    return CheckResult(NAME, status=status, reason=reason, metrics=metrics, details=details,
                       seconds=time.perf_counter() - t0)


@contextlib.contextmanager
def _model_randomness(ctx: RunContext, random_graph: bool) -> Iterator[None]:
    """Random ops in the converted module draw from torch's global generator: seed it from
    the run's seed for the attacks (EOT), and restore it afterwards."""
    if not random_graph:
        yield
        return
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=ctx.generator(SALT + 7))))
        yield


def _threat_curve(ctx: RunContext, target: Target, tm: ThreatModel, primary: bool,
                  metrics: dict[str, Any], tally: _Tally, progress: Any) -> list[dict[str, Any]]:
    std, data = ctx.standard, ctx.eval_set
    assert ctx.correct is not None
    generator = ctx.generator(salt=SALT + sum(map(ord, tm.norm)))
    robust = ctx.correct.copy()
    aa_robust = ctx.correct.copy()
    found = np.zeros(len(data), dtype=bool)
    x_found = data.x.copy()
    broken_by = np.full(len(data), "", dtype=object)
    curve: list[dict[str, Any]] = []
    selected = [a for a in std.attacks if a in LP_ATTACKS]
    white_box = target.module is not None
    runnable = [a for a in selected if not supported(a, tm.norm, white_box)]
    if not runnable and not (AA in std.attacks and white_box):
        # No attack can run: report no robust accuracy rather than the clean one.
        tally.skipped[f"{tm.norm}:all"] = "no selected attack can run for this threat model"
        return curve
    for k, eps in enumerate(sorted(tm.eps, key=lambda e: e.value)):
        ball = Ball(tm.norm, eps.value)
        # One seed per radius; each point's randomness is keyed by its index (rowrandom).
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        successes: dict[str, int] = {}
        alive = np.flatnonzero(robust)
        for start in range(0, len(alive), ctx.batch_size):
            progress(k + start / max(len(alive), 1))  # in radii done
            idx = alive[start:start + ctx.batch_size]
            res = cascade(target, data.x[idx], data.y[idx], ball, ctx.domain, std.budget,
                          tuple(selected), RowRandom.of(seed, idx))
            for attack in res.forward:
                tally.add(attack, res.forward[attack], res.backward[attack],
                          res.seconds.get(attack, 0.0))
            tally.skipped.update({f"{tm.norm}:{a}": why for a, why in res.skipped.items()})
            tally.rejected += res.rejected
            for attack, n in res.successes.items():
                successes[attack] = successes.get(attack, 0) + n
            hit = idx[res.fooled]
            robust[hit], found[hit] = False, True
            x_found[hit], broken_by[hit] = res.x_adv[res.fooled], res.broken_by[res.fooled]
        if AA in std.attacks:
            aa_robust, aa_x = _autoattack(ctx, target, ball, aa_robust, tally)
            newly = robust & ~aa_robust
            found[newly], broken_by[newly] = True, AA
            x_found[newly] = aa_x[newly]
            robust &= aa_robust
            metrics[tm.key(f"autoattack.robust_accuracy@{eps.label}", primary)] = float(
                aa_robust.mean())
        acc = float(robust.mean())
        metrics[tm.key(f"robust_accuracy@{eps.label}", primary)] = acc
        for attack, n in successes.items():
            metrics[tm.key(f"successes.{attack}@{eps.label}", primary)] = n
        curve.append({"eps": eps.value, "eps_label": eps.label, "robust_accuracy": acc,
                      "n_robust": int(robust.sum()), "successes": successes})
        prefix = "" if primary else f"{tm.norm}."
        ctx.per_sample[f"{prefix}attacked_robust@{eps.label}"] = robust.copy()
        ctx.per_sample[f"{prefix}broken_by@{eps.label}"] = broken_by.copy()
        index = np.flatnonzero(found)
        ctx.per_sample[f"{prefix}adversarial_examples@{eps.label}"] = {
            "index": index, "x_adv": x_found[index].copy()}
    return curve


def _autoattack(ctx: RunContext, target: Target, ball: Ball, aa_robust: np.ndarray,
                tally: _Tally) -> tuple[np.ndarray, np.ndarray]:
    """AutoAttack on the points it has not broken yet, its examples re-checked too:
    (robust mask, examples in place of the broken samples)."""
    data = ctx.eval_set
    x_all = data.x.copy()
    if target.module is None:
        tally.skipped[f"{ball.norm}:{AA}"] = "needs gradients: no trusted torch module"
        return aa_robust, x_all
    idx = np.flatnonzero(aa_robust)
    out = autoattack_standard(target.module, data.x[idx], data.y[idx], ball, ctx.domain,
                              seed=ctx.seed, device=ctx.device, batch_size=ctx.batch_size)
    tally.add(AA, out.forward_passes, out.backward_passes, out.seconds)
    confirmed = np.zeros(len(idx), dtype=bool)
    if out.fooled.any():
        confirmed[out.fooled] = recheck(ctx.model.original, data.x[idx][out.fooled],
                                        out.x_adv[out.fooled], data.y[idx][out.fooled], ball,
                                        ctx.domain)
    tally.rejected += int(out.fooled.sum() - confirmed.sum())
    x_all[idx[confirmed]] = out.x_adv[confirmed]
    robust = aa_robust.copy()
    robust[idx[confirmed]] = False
    return robust, x_all


def _non_lp(ctx: RunContext, metrics: dict[str, Any], tally: _Tally) -> None:
    """Spatial grid and corruption sweep, both on onnxruntime over every sample."""
    std, data = ctx.standard, ctx.eval_set
    predict = ctx.model.runner.predict
    if "spatial" in std.attacks:
        if data.x.ndim != 4:
            tally.skipped["spatial"] = f"needs (N, C, H, W) inputs, samples are {data.x.shape}"
        else:
            t0 = time.perf_counter()
            out = spatial_attack(predict, data.x, data.y, std.budget.spatial, ctx.domain,
                                 ctx.device)
            tally.add("spatial", out.forward_passes, 0, time.perf_counter() - t0)
            metrics["spatial.accuracy"] = float(out.robust.mean())
            metrics["spatial.transforms"] = len(out.grid)
            ctx.per_sample["spatial_robust"] = out.robust
    if "corruptions" in std.attacks:
        if data.x.ndim != 4:
            tally.skipped["corruptions"] = f"needs image inputs, samples are {data.x.shape}"
            return
        t0 = time.perf_counter()
        accs, passes = corruption_sweep(predict, data.x, data.y, std.budget.corruptions.severities,
                                        ctx.domain, ctx.device, ctx.generator(salt=SALT + 100))
        tally.add("corruptions", passes, 0, time.perf_counter() - t0)
        for key, acc in accs.items():
            metrics[f"corruption.{key}.accuracy"] = acc
        metrics["corruption.mean_accuracy"] = float(np.mean(list(accs.values())))


def _status(surf: masking.AttackSurface, lp: list[str]) -> tuple[str, str]:
    needs_gradients = any(a in GRADIENT_ATTACKS or a == AA for a in lp)
    if needs_gradients and surf.module is None:
        return "inconclusive", (f"{surf.reason}; gradient attacks not run, only black-box "
                                "evidence (Square) is available")
    if surf.findings:
        ops = ", ".join(f.label() for f in surf.findings[:5])
        return "inconclusive", (f"gradient-masking ops on the input path ({ops}); attacked "
                                "with BPDA/EOT, but attack evidence on such a model cannot "
                                "support PASS")
    return "ok", ""
