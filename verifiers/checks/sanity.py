"""Sanity checks against gradient masking (Carlini et al. 2019; Athalye et al. 2018).

Run after the adversarial check, on a seeded subsample of clean-correct points, for the
primary threat model, with the same (BPDA/EOT-adapted) module the battery attacked:

(a) ``large_eps``: at a radius covering the whole input box, APGD started at the clean point
    (no random start, so zero gradients cannot hide behind a lucky start) breaks ~every point;
(b) ``budget``: a stronger budget (iterations x factor, one more restart) never leaves more
    points robust than the standard one, beyond noise; and it finds no more than noise on
    the points the battery left robust (the battery converged);
(c) ``blackbox``: of the points the white-box attacks failed on and Square (black-box,
    onnxruntime) broke, no more than noise resist a stronger white-box attack too (a point
    the stronger attack breaks shows the budget fell short, not that gradients mislead);
    not applicable to L1, which Square does not support;
(d) ``monotone``: robust accuracy from independent attacks falls with eps, within noise;
(e) ``masking``: no gradient-breaking or random ops on the input path (if any, the battery
    already attacked with BPDA/EOT; the model is still not passed on attack evidence).

"Noise" is max(noise_points, noise_fraction * n) points. Any failure sets the adversarial
check's status to inconclusive with the reasons (its metrics stay), so criteria on
``adversarial.*`` are never PASS through verifiers.standards.evaluate: INCONCLUSIVE, or FAIL
where a robust accuracy (an upper bound) already misses its threshold. This check's own status
stays "ok" when it ran; ``sanity.passed`` is 1.0 or 0.0 for criteria that want it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from verifiers.attacks.apgd import ApgdConfig, apgd
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import Target, cascade
from verifiers.attacks.budget import IterBudget, SanityBudget, TargetedBudget
from verifiers.attacks.recheck import recheck
from verifiers.catalogue import sanity as declared
from verifiers.checks.adversarial import attack_surface
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.reasons import grouped, join_reasons
from verifiers.scorecard import CheckResult

NAME = "sanity"
SALT = 3


@dataclass
class Finding:
    passed: bool | None          # None: could not be evaluated (counts as failed...)
    value: float | int | None
    detail: str
    applicable: bool = True      # ...unless the check does not exist for this threat model

    @property
    def failed(self) -> bool:
        return self.applicable and not self.passed

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "applicable": self.applicable, "value": self.value,
                "detail": self.detail}


def noise(n: int, cfg: SanityBudget) -> int:
    return max(cfg.noise_points, math.ceil(cfg.noise_fraction * n))


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    adv = ctx.results.get("adversarial")
    if adv is None or ctx.correct is None:
        return CheckResult(NAME, status="inconclusive", reason="the adversarial check did not run",
                           seconds=time.perf_counter() - t0)
    std = ctx.standard
    surf, target = attack_surface(ctx)
    generator = ctx.generator(salt=SALT)
    sample = _sample(ctx.correct, std.budget.sanity.points, generator)
    findings: dict[str, Finding] = {}
    ops = [f.label() for f in surf.findings]
    findings["masking"] = Finding(not ops, len(ops), ", ".join(ops) or "none on the input path")
    if surf.module is None:
        why = f"white-box attacks not possible ({surf.reason})"
        for name in ("large_eps", "monotone", "budget", "blackbox"):
            findings[name] = Finding(None, None, why)
    elif len(sample) == 0:
        for name in ("large_eps", "monotone", "budget", "blackbox"):
            findings[name] = Finding(None, None, "no correctly classified sample to attack")
    else:
        gradient_checks(ctx, target, sample, generator, findings)
        ctx.progress(0.8)
        findings["blackbox"] = _blackbox(ctx, target, sample, generator)
    failed = {k: f for k, f in findings.items() if f.failed}
    metrics: dict[str, Any] = {"passed": 0.0 if failed else 1.0, "points": len(sample)}
    for key, f in findings.items():
        metrics[f"{key}.passed"] = None if f.passed is None else float(f.passed)
        if f.value is not None:
            metrics[f"{key}.value"] = f.value
    metrics = {k: v for k, v in metrics.items() if v is not None}
    summary = {k: f.as_dict() for k, f in findings.items()}
    if failed:
        why = grouped({k: f.detail for k, f in failed.items()})
        adv.status = "inconclusive"
        if surf.module is None and adv.reason and surf.reason in adv.reason:
            # The cause is already the adversarial check's own reason: say it once.
            why = ", ".join(failed) + ": not run (white-box attacks not possible)"
        adv.reason = join_reasons((adv.reason, f"gradient-masking sanity checks failed ({why})"))
    adv.details["sanity"] = {"passed": not failed, "findings": summary}
    return CheckResult(NAME, metrics=metrics,
                       details={"findings": summary, "threat_model": std.threats[0].norm,
                                "budget": asdict(std.budget.sanity),
                                "references": "Carlini et al. 2019; Athalye et al. 2018"},
                       seconds=time.perf_counter() - t0)


def _sample(correct: np.ndarray, points: int, generator: torch.Generator) -> np.ndarray:
    idx = np.flatnonzero(correct)
    if len(idx) <= points:
        return idx
    pick = torch.randperm(len(idx), generator=generator)[:points].numpy()
    return np.sort(idx[pick])


def _broken(ctx: RunContext, target: Target, idx: np.ndarray, ball: Ball, cfg: ApgdConfig,
            generator: torch.Generator) -> np.ndarray:
    """APGD on ``idx``, confirmed on onnxruntime: bool per point."""
    assert target.module is not None
    data = ctx.eval_set
    out = np.zeros(len(idx), dtype=bool)
    for start in range(0, len(idx), ctx.batch_size):
        part = idx[start:start + ctx.batch_size]
        x = torch.from_numpy(data.x[part]).to(ctx.device)
        y = torch.from_numpy(data.y[part]).to(ctx.device)
        res = apgd(target.module, x, y, ball, ctx.domain, replace(cfg, eot=target.eot), generator)
        claimed = res.fooled.cpu().numpy()
        if claimed.any():
            out[start:start + len(part)][claimed] = recheck(
                ctx.model.original, data.x[part][claimed], res.x_adv.cpu().numpy()[claimed],
                data.y[part][claimed], ball, ctx.domain)
    return out


def _huge_eps(ctx: RunContext, norm: str) -> float:
    width = ctx.domain.high - ctx.domain.low
    d = int(np.prod(ctx.eval_set.x.shape[1:]))
    return {"linf": width, "l2": width * math.sqrt(d), "l1": width * d}[norm]


def gradient_checks(ctx: RunContext, target: Target, sample: np.ndarray,
                     generator: torch.Generator, findings: dict[str, Finding]) -> None:
    """(a), (d) and (b) on ``sample`` with ``target``'s module, into ``findings``."""
    std = ctx.standard
    cfg, tm = std.budget.sanity, std.threats[0]
    base = std.budget.apgd_ce
    n, tol = len(sample), noise(len(sample), cfg)
    # (a) the whole box is reachable: every point must fall, starting from the clean point.
    big = _huge_eps(ctx, tm.norm)
    still = sample.copy()
    for loss in ("ce", "dlr"):  # DLR as well: saturated softmax is not masking by the model
        hit = _broken(ctx, target, still, Ball(tm.norm, big),
                      ApgdConfig(max(base.iterations, 20), 1, loss=loss, random_start=False),
                      generator)
        still = still[~hit]
    findings["large_eps"] = Finding(
        len(still) <= tol, round(1 - len(still) / n, 4),
        f"{n - len(still)}/{n} broken at {tm.norm} eps={big:g} (whole input box)")
    # (d) independent attacks at growing radii, the huge one last.
    top = max(e.value for e in tm.eps)
    radii = [r for r in sorted({e.value for e in tm.eps} | {2 * top, 4 * top}) if r < big]
    robust = []
    weak_cfg = ApgdConfig(base.iterations, base.restarts, loss="ce")
    broken_at: dict[float, np.ndarray] = {}
    for r in radii:
        broken_at[r] = _broken(ctx, target, sample, Ball(tm.norm, r), weak_cfg, generator)
        robust.append(int((~broken_at[r]).sum()))
    robust.append(len(still))
    rise = max((b - a for a, b in zip(robust, robust[1:], strict=False)), default=0)
    findings["monotone"] = Finding(
        rise <= tol, rise,
        "robust points at " + ", ".join(f"{r:g}: {c}" for r, c in zip([*radii, big], robust,
                                                                      strict=True)))
    ctx.progress(0.5)
    primary = tm.eps[0].value
    weak = broken_at.get(primary)
    if weak is None:  # the primary radius covers the whole box
        weak = _broken(ctx, target, sample, Ball(tm.norm, primary), weak_cfg, generator)
    findings["budget"] = _budget(ctx, target, sample, weak, generator)


def _stronger(ctx: RunContext, target: Target, idx: np.ndarray, ball: Ball,
              generator: torch.Generator, attacks: tuple[str, ...] = ("apgd-ce", "apgd-t")
              ) -> np.ndarray:
    """Which of ``idx`` a stronger white-box cascade breaks (iterations x stronger_factor,
    APGD-CE one more restart), every success confirmed on onnxruntime: bool per point."""
    if len(idx) == 0:
        return np.zeros(0, dtype=bool)
    b = ctx.standard.budget
    factor = b.sanity.stronger_factor
    harder = replace(b, apgd_ce=IterBudget(b.apgd_ce.iterations * factor, b.apgd_ce.restarts + 1),
                     apgd_t=TargetedBudget(b.apgd_t.iterations * factor, b.apgd_t.targets,
                                           b.apgd_t.restarts))
    res = cascade(target, ctx.eval_set.x[idx], ctx.eval_set.y[idx], ball, ctx.domain, harder,
                  attacks, generator)
    return res.fooled


def _budget(ctx: RunContext, target: Target, sample: np.ndarray, weak_broken: np.ndarray,
            generator: torch.Generator) -> Finding:
    """(b) A stronger budget finds at least as many, and little beyond what the battery found."""
    std = ctx.standard
    cfg, tm = std.budget.sanity, std.threats[0]
    eps = tm.eps[0]
    ball = Ball(tm.norm, eps.value)
    base = std.budget.apgd_ce
    strong = ApgdConfig(base.iterations * cfg.stronger_factor, base.restarts + 1, loss="ce")
    strong_broken = _broken(ctx, target, sample, ball, strong, generator)
    tol = noise(len(sample), cfg)
    worse = int((~strong_broken).sum() - (~weak_broken).sum())
    survived = ctx.per_sample.get(f"attacked_robust@{eps.label}")
    extra = 0
    if survived is not None:
        left = sample[survived[sample] & ~strong_broken]
        extra = int((survived[sample] & strong_broken).sum())
        extra += int(_stronger(ctx, target, left, ball, generator, ("apgd-t",)).sum())
    ok = worse <= tol and extra <= tol
    return Finding(ok, extra, (
        f"at {tm.norm} eps={eps.label}: stronger APGD-CE leaves {worse:+d} points robust vs the "
        f"standard budget; stronger APGD-CE/APGD-T break {extra} of the points the battery "
        f"left robust (noise: {tol})"))


def _blackbox(ctx: RunContext, target: Target, sample: np.ndarray,
              generator: torch.Generator) -> Finding:
    """(c) Square succeeding where white-box attacks fail means the gradients mislead.

    A point Square broke after the battery's white-box attacks failed on it is first given to
    a stronger white-box attack: if that breaks it, the gradients were informative and the
    standard budget merely fell short on it (check (b) judges the budget). Only the points
    no white-box attack can break count as evidence of masking.
    """
    std = ctx.standard
    cfg, tm = std.budget.sanity, std.threats[0]
    if tm.norm not in ("linf", "l2"):
        return Finding(None, None, f"no black-box attack for {tm.norm} (Square: Linf, L2)",
                       applicable=False)
    if "square" not in std.attacks:
        return _square_on_survivors(ctx, target, sample, generator)
    radii = sorted(tm.eps, key=lambda e: e.value)
    alive = ctx.correct.copy() if ctx.correct is not None else None
    seen = np.zeros(len(ctx.eval_set), dtype=bool)
    square_only, unexplained, worst = [], [], False
    for eps in radii:
        by = ctx.per_sample.get(f"broken_by@{eps.label}")
        if by is None or alive is None:
            return Finding(None, None, "the battery left no per-sample record")
        fresh = np.flatnonzero((by == "square") & ~seen)   # points first broken by Square here
        seen[fresh] = True
        left = fresh[~_stronger(ctx, target, fresh, Ball(tm.norm, eps.value), generator)]
        worst |= len(left) > noise(int(alive.sum()), cfg)
        square_only.append(len(fresh))
        unexplained.append(len(left))
        alive = ctx.per_sample[f"attacked_robust@{eps.label}"]
    detail = (
        "Square broke points every white-box attack failed on: "
        + ", ".join(f"eps={e.label}: {c}" for e, c in zip(radii, square_only, strict=True))
        + "; of those, a stronger white-box attack could not break "
        + ", ".join(f"eps={e.label}: {c}" for e, c in zip(radii, unexplained, strict=True))
        + f" (noise: max({cfg.noise_points}, {cfg.noise_fraction:g} x points still robust))")
    return Finding(not worst, sum(unexplained), detail)


def _square_on_survivors(ctx: RunContext, target: Target, sample: np.ndarray,
                         generator: torch.Generator) -> Finding:
    """(c) when Square was not in the battery: run it on the subsample's white-box survivors."""
    std = ctx.standard
    cfg, tm = std.budget.sanity, std.threats[0]
    eps = tm.eps[0]
    ball = Ball(tm.norm, eps.value)
    survived = ctx.per_sample.get(f"attacked_robust@{eps.label}")
    left = sample if survived is None else sample[survived[sample]]
    res = cascade(target, ctx.eval_set.x[left], ctx.eval_set.y[left], ball, ctx.domain,
                  std.budget, ("square",), generator)
    broken = left[res.fooled]
    stuck = broken[~_stronger(ctx, target, broken, ball, generator)]
    tol = noise(len(sample), cfg)
    return Finding(len(stuck) <= tol, len(stuck), (
        f"Square broke {len(broken)} of {len(left)} points the white-box attacks left robust "
        f"at eps={eps.label}; a stronger white-box attack could not break {len(stuck)} of "
        f"them (noise: {tol})"))


CHECK = register(Check(NAME, run, declared.METRICS,
                       reads=("attacked_robust", "module"),
                       writes=("attack_trust",)))
