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
from typing import Any

import numpy as np
import torch

from verifiers import examples
from verifiers.attacks import masking
from verifiers.attacks.autoattack_std import autoattack_standard
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import LP_ATTACKS, Target, cascade, supported
from verifiers.attacks.budget import GRADIENT_ATTACKS
from verifiers.attacks.corruptions import corruption_sweep
from verifiers.attacks.recheck import recheck
from verifiers.attacks.rowrandom import RowRandom
from verifiers.attacks.spatial import spatial_attack
from verifiers.catalogue import adversarial as declared
from verifiers.checks import timelimit
from verifiers.checks.attack_evidence import ChunkEvidence, RadiusEvidence, merge
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.errors import TimeLimitReached
from verifiers.interrupt import time_limit
from verifiers.ood.reader import OutputReader
from verifiers.plan import SHARD_SAMPLES, attack_chunks
from verifiers.scorecard import CheckResult
from verifiers.standards import ThreatModel

NAME = "adversarial"
SALT = 1
AA = "autoattack-standard"
log = logging.getLogger(__name__)


def run(ctx: RunContext) -> CheckResult:
    """The whole check on one context: every planned chunk in turn, then the summary.

    The registry's protocol, for callers that run checks on a context of their own (the
    check-level tests). A job never comes here: its executors run the plan's steps
    (verifiers.run_plan), one :func:`attack_chunk` per step, and :func:`summarise` in finish.
    """
    spans = attack_chunks(len(ctx.eval_set))
    chunks = []
    progress = ctx.progress
    for k, (lo, hi) in enumerate(spans):
        ctx.progress = lambda f, k=k: progress((k + f) / len(spans))
        chunks.append(attack_chunk(ctx, lo, hi))
    ctx.progress = progress
    return summarise(ctx, chunks)


def attack_surface(ctx: RunContext) -> tuple[masking.AttackSurface, Target]:
    surf = ctx.attack_surface()
    target = Target(surf.module, ctx.model.runner, ctx.model.info.output_kind, ctx.device,
                    surf.eot, reference=ctx.model.original, logits=ctx.logits_runner())
    return surf, target


def attack_chunk(ctx: RunContext, lo: int, hi: int) -> ChunkEvidence:
    """Every Lp threat model's attacks on samples [lo, hi) (one shard of a job). Past the
    standard's time limit the chunk comes back empty, marked ``cut`` with the reason."""
    if ctx.out_of_time() or ctx.correct is None:  # no clean check: time ran out before it
        return ChunkEvidence(lo, hi, cut=ctx.time_limit_reason)
    try:
        with time_limit(ctx.deadline, ctx.time_limit_reason):
            return _attack_chunk(ctx, lo, hi)
    except TimeLimitReached as exc:
        return ChunkEvidence(lo, hi, cut=str(exc))


def _attack_chunk(ctx: RunContext, lo: int, hi: int) -> ChunkEvidence:
    assert ctx.correct is not None, "the clean check runs first"
    surf, target = attack_surface(ctx)
    evidence = ChunkEvidence(lo, hi)
    steps = sum(len(tm.eps) for tm in ctx.standard.threats)
    done = 0
    with _model_randomness(ctx, surf.eot > 1):
        for i, tm in enumerate(ctx.standard.threats):
            _threat_curve(ctx, target, tm, i == 0, evidence,
                          lambda f, d=done: ctx.progress((d + f) / steps))
            done += len(tm.eps)
    return evidence


def summarise(ctx: RunContext, chunks: list[ChunkEvidence]) -> CheckResult:
    """Merge the chunks' evidence, run the whole-set sweeps, and compute the metrics."""
    t0 = time.perf_counter()
    cut = next((c.cut for c in chunks if c.cut), "")
    if cut:  # figures over part of the set would be neither bound nor estimate: none
        return timelimit.cut(NAME, cut)
    assert ctx.correct is not None, "the clean check runs first"
    std, data = ctx.standard, ctx.eval_set
    surf, _ = attack_surface(ctx)
    merged, tally = merge(chunks, len(data), tuple(data.x.shape[1:]))
    metrics: dict[str, Any] = {}
    counts: dict[str, list[list[int]]] = {}  # [k, n] for a standard's confidence
    curves: dict[str, list[dict[str, Any]]] = {}
    kept: list[dict[str, Any]] = []
    probs = _prob_reader(ctx)
    for i, tm in enumerate(std.threats):
        primary = i == 0
        prefix = "" if primary else f"{tm.norm}."
        curve = curves[tm.norm] = []
        for eps in sorted(tm.eps, key=lambda e: e.value):
            r = merged.get(prefix + eps.label)
            if r is None:  # no attack could run for this threat model
                continue
            acc = float(r.robust.mean())
            metrics[tm.key(f"robust_accuracy@{eps.label}", primary)] = acc
            counts[tm.key(f"robust_accuracy@{eps.label}", primary)] = [[int(r.robust.sum()),
                                                                        len(r.robust)]]
            if r.aa_robust is not None:
                metrics[tm.key(f"autoattack.robust_accuracy@{eps.label}", primary)] = float(
                    r.aa_robust.mean())
                counts[tm.key(f"autoattack.robust_accuracy@{eps.label}", primary)] = [
                    [int(r.aa_robust.sum()), len(r.aa_robust)]]
            for attack, n in r.successes.items():
                metrics[tm.key(f"successes.{attack}@{eps.label}", primary)] = n
            curve.append({"eps": eps.value, "eps_label": eps.label, "robust_accuracy": acc,
                          "n_robust": int(r.robust.sum()), "successes": r.successes})
            ctx.per_sample[f"{prefix}attacked_robust@{eps.label}"] = r.robust.copy()
            ctx.per_sample[f"{prefix}broken_by@{eps.label}"] = r.broken_by.copy()
            ctx.per_sample[f"{prefix}adversarial_examples@{eps.label}"] = r.examples
            kept.append(examples.radius_record(
                norm=tm.norm, eps_label=eps.label, eps=eps.value, x=data.x, y=data.y,
                index=r.examples["index"], x_adv=r.examples["x_adv"], broken_by=r.broken_by,
                probs=probs))
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
        "curves": curves, "skipped": tally.skipped, "counts": counts,
        "examples": examples.section(kept, tuple(data.x.shape[1:])),
        "shards": {"samples_per_shard": SHARD_SAMPLES, "count": len(chunks)},
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
    seconds = sum(tally.seconds.values()) + time.perf_counter() - t0
    return CheckResult(NAME, status=status, reason=reason, metrics=metrics, details=details,
                       seconds=seconds)


def _prob_reader(ctx: RunContext) -> Any:
    """probabilities(batch) on onnxruntime, the model as shipped (for the examples' labels)."""
    reader = OutputReader(ctx.model, ctx.eval_set.x[:1], want_logits=False,
                          batch_size=ctx.batch_size)
    return lambda x: reader.read(x).probs


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
                  evidence: ChunkEvidence, progress: Any) -> None:
    std, data = ctx.standard, ctx.eval_set
    assert ctx.correct is not None
    lo, hi = evidence.lo, evidence.hi
    generator = ctx.generator(salt=SALT + sum(map(ord, tm.norm)))
    robust = ctx.correct[lo:hi].copy()     # chunk-local masks, global sample ids below
    aa_robust = robust.copy()
    found = np.zeros(hi - lo, dtype=bool)
    x_found = data.x[lo:hi].copy()
    broken_by = np.full(hi - lo, "", dtype=object)
    selected = [a for a in std.attacks if a in LP_ATTACKS]
    white_box = target.module is not None
    runnable = [a for a in selected if not supported(a, tm.norm, white_box)]
    # pyautoattack's Square and FAB unpack (C, H, W): on flat (tabular) inputs it crashes.
    aa_runs = AA in std.attacks and white_box and data.x.ndim == 4
    if AA in std.attacks and white_box and not aa_runs:
        evidence.skipped[f"{tm.norm}:{AA}"] = (f"needs image inputs (N, C, H, W), samples are "
                                               f"{tuple(data.x.shape)}")
    if not runnable and not aa_runs:
        # No attack can run: report no robust accuracy rather than the clean one.
        evidence.skipped[f"{tm.norm}:all"] = "no selected attack can run for this threat model"
        return
    prefix = "" if primary else f"{tm.norm}."
    for k, eps in enumerate(sorted(tm.eps, key=lambda e: e.value)):
        ball = Ball(tm.norm, eps.value)
        # One seed per radius; gradient attacks key each point's randomness by its index
        # (rowrandom). Square draws per batch, so the plan (verifiers.plan), never the number
        # of workers, fixes the chunks and hence the batches.
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        successes: dict[str, int] = {}
        alive = np.flatnonzero(robust)
        for start in range(0, len(alive), ctx.batch_size):
            progress(k + start / max(len(alive), 1))  # in radii done
            idx = alive[start:start + ctx.batch_size]
            res = cascade(target, data.x[lo + idx], data.y[lo + idx], ball, ctx.domain,
                          std.budget, tuple(selected), RowRandom.of(seed, lo + idx))
            for attack in res.forward:
                evidence.add(attack, res.forward[attack], res.backward[attack],
                             res.seconds.get(attack, 0.0))
            evidence.skipped.update({f"{tm.norm}:{a}": why for a, why in res.skipped.items()})
            evidence.rejected += res.rejected
            for attack, n in res.successes.items():
                successes[attack] = successes.get(attack, 0) + n
            hit = idx[res.fooled]
            robust[hit], found[hit] = False, True
            x_found[hit], broken_by[hit] = res.x_adv[res.fooled], res.broken_by[res.fooled]
        if aa_runs:
            aa_robust, aa_x = _autoattack(ctx, target, ball, lo, aa_robust, evidence)
            newly = robust & ~aa_robust
            found[newly], broken_by[newly] = True, AA
            x_found[newly] = aa_x[newly]
            robust &= aa_robust
        index = np.flatnonzero(found)
        evidence.radii[prefix + eps.label] = RadiusEvidence(
            robust=robust.copy(), broken_by=broken_by.copy(), found_index=lo + index,
            found_x=x_found[index].copy(), successes=successes,
            aa_robust=aa_robust.copy() if aa_runs else None)


def _autoattack(ctx: RunContext, target: Target, ball: Ball, lo: int, aa_robust: np.ndarray,
                evidence: ChunkEvidence) -> tuple[np.ndarray, np.ndarray]:
    """AutoAttack on the chunk's points it has not broken yet (chunk-local mask), its examples
    re-checked too: (robust mask, examples in place of the broken samples)."""
    data = ctx.eval_set
    x_all = data.x[lo:lo + len(aa_robust)].copy()
    if target.module is None:
        evidence.skipped[f"{ball.norm}:{AA}"] = "needs gradients: no trusted torch module"
        return aa_robust, x_all
    idx = np.flatnonzero(aa_robust)
    x, y = x_all[idx], data.y[lo + idx]
    out = autoattack_standard(target.module, x, y, ball, ctx.domain,
                              seed=ctx.seed, device=ctx.device, batch_size=ctx.batch_size)
    evidence.add(AA, out.forward_passes, out.backward_passes, out.seconds)
    confirmed = np.zeros(len(idx), dtype=bool)
    if out.fooled.any():
        confirmed[out.fooled] = recheck(ctx.model.original, x[out.fooled],
                                        out.x_adv[out.fooled], y[out.fooled], ball, ctx.domain)
    evidence.rejected += int(out.fooled.sum() - confirmed.sum())
    x_all[idx[confirmed]] = out.x_adv[confirmed]
    robust = aa_robust.copy()
    robust[idx[confirmed]] = False
    return robust, x_all


def _non_lp(ctx: RunContext, metrics: dict[str, Any], tally: ChunkEvidence) -> None:
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


CHECK = register(Check(NAME, run, declared.METRICS,
                       reads=("correct", "module"),
                       writes=("attacked_robust", "adversarial_examples"),
                       sharded=True))
