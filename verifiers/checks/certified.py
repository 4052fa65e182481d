"""Certified robust accuracy from the bound engine, cross-checked against the attacks.

"We attacked and failed" becomes "no perturbation in the set can change the prediction".
Per sample, certified <= attacked-robust <= clean: a sample both certified and successfully
attacked is a soundness bug and fails the run loudly (SoundnessError).

When a criterion names a certified metric, the samples the bounds leave undecided and no
attack broke go to branch and bound (``verifiers.bounds.bab``) for the standard's
``certified.bab_batches`` each (a work budget, so the figures are the same on every
machine; ``bab_seconds`` caps the wall time, and a sample it cuts makes them INCONCLUSIVE).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from verifiers.bounds import BoundConfig, BoundGraph, Method, certify_samples
from verifiers.bounds.bab.certify import certify_undecided
from verifiers.bounds.cost import refinement_cost
from verifiers.catalogue import certified as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.errors import IntakeError, SoundnessError, VerifierError
from verifiers.scorecard import CheckResult
from verifiers.standards.spec import Eps

NAME = "certified"
_BATCH = 32  # certify_samples' batch size, named here so the blocks below are whole batches
_BLOCK = 32 * _BATCH
# CROWN's worst-case refinement cost per sample (verifiers.bounds.cost) above which it is not
# started: a CIFAR ResNet-18 (2.3e9, minutes a sample on a CPU) runs, an ImageNet ResNet-50
# (1.3e14, months a sample) gets IBP and the certified criteria say why they are inconclusive.
CROWN_MAX_COST = 10**10


def method_for(ctx: RunContext) -> Method:
    """IBP always (milliseconds, and it still cross-checks the attacks); the IBP -> CROWN
    cascade when the standard has a criterion on certified metrics."""
    wanted = any(c.check == NAME for c in ctx.standard.criteria)
    return Method.CROWN if wanted else Method.IBP


def run(ctx: RunContext, method: Method | None = None) -> CheckResult:
    t0 = time.perf_counter()
    std = ctx.standard
    method = method or method_for(ctx)
    if std.norm != "linf":
        return CheckResult(NAME, status="inconclusive",
                           reason=f"the bound engine handles L-infinity balls, not {std.norm}",
                           seconds=time.perf_counter() - t0)
    try:
        graph = ctx.bound_graph()
    except IntakeError as exc:  # UnsupportedOpError included: "op X at node Y"
        return CheckResult(NAME, status="inconclusive", reason=f"not certifiable: {exc}",
                           seconds=time.perf_counter() - t0)
    assert ctx.correct is not None, "the clean check runs first"
    partial: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if method is not Method.IBP and (cost := refinement_cost(graph)) > CROWN_MAX_COST:
        # IBP figures stay sound lower bounds, but they are not what the standard asked for.
        reason = (f"{method.value} not run: its refinement would move about {cost:.1e} numbers "
                  f"per sample (limit {CROWN_MAX_COST:.0e}); figures are IBP's only")
        method, partial["certified_accuracy@*"] = Method.IBP, reason
        extra["crown_skipped"] = reason
    data = ctx.eval_set
    # Only correctly classified samples can be certified; a sample not certified at a
    # smaller eps cannot be at a larger one.
    alive = ctx.correct.copy()
    metrics: dict[str, Any] = {}
    counts: dict[str, list[list[int]]] = {}
    curve, by_method = [], {}
    bab = {"batches_per_sample": std.certified.bab_batches,
           "seconds_cap_per_sample": std.certified.bab_seconds, "tried": 0, "certified": 0,
           "counterexamples": 0, "undecided": 0, "time_capped": 0, "seconds": 0.0}
    use_bab = method != Method.IBP and std.certified.bab_batches > 0
    note = ""
    # Ascending radii: a sample not certified at a smaller eps cannot be at a larger one.
    for k, eps in enumerate(sorted(std.eps, key=lambda e: e.value)):
        ctx.progress(k / len(std.eps))
        idx = np.flatnonzero(alive)
        certified = np.zeros(len(data), dtype=bool)
        # In blocks of whole bound batches: the same batches as one call, without gathering
        # every sample of a memory-mapped set into memory at once.
        for lo in range(0, len(idx), _BLOCK):
            part = idx[lo:lo + _BLOCK]
            try:
                result = certify_samples(graph, data.x[part], data.y[part], eps.value,
                                         ctx.domain, method, config=BoundConfig(),
                                         device=ctx.device, batch_size=_BATCH)
            except VerifierError as exc:  # out of memory on one sample, a torch failure
                return CheckResult(NAME, status="inconclusive", reason=f"bounds failed: {exc}",
                                   details={"method": method.value},
                                   seconds=time.perf_counter() - t0)
            certified[part] = result.certified
            note = result.note or note
            for name in result.certified_by[result.certified]:
                by_method[name] = by_method.get(name, 0) + 1
            if use_bab:
                _branch_and_bound(ctx, graph, idx, result.certified, result.lower_bounds,
                                  eps, certified, bab, by_method)
        _cross_check(ctx, certified, eps.label)
        alive &= certified
        acc = float(certified.sum() / len(data))
        metrics[f"certified_accuracy@{eps.label}"] = acc
        counts[f"certified_accuracy@{eps.label}"] = [[int(certified.sum()), len(data)]]
        curve.append({"eps": eps.value, "eps_label": eps.label, "certified_accuracy": acc,
                      "n_certified": int(certified.sum())})
        ctx.per_sample[f"certified@{eps.label}"] = certified
    if bab["time_capped"]:
        partial["certified_accuracy@*"] = (
            f"branch and bound hit its time cap (certified.bab_seconds = "
            f"{std.certified.bab_seconds:g} s) on {bab['time_capped']} sample(s) before its "
            f"work budget of {std.certified.bab_batches} batches: the figure would depend on "
            "the machine's speed; raise bab_seconds or lower bab_batches")
    if partial:
        extra["partial"] = partial
    return CheckResult(
        NAME, metrics=metrics,
        details=extra | {"method": method.value, "curve": curve, "branch_and_bound": bab,
                 "certified_by": by_method, "note": note, "counts": counts,
                 "soundness": "every certified sample was checked against the attacks",
                 # certified accuracy can only be an under-estimate of true robust accuracy
                 "lower_bounds": ["certified_accuracy@*"]},
        seconds=time.perf_counter() - t0)


def _branch_and_bound(ctx: RunContext, graph: BoundGraph, idx: np.ndarray, proved: np.ndarray,
                      margins: np.ndarray, eps: Eps, certified: np.ndarray, bab: dict[str, Any],
                      by_method: dict[str, int]) -> None:
    """Samples of ``idx`` the bounds left undecided and no attack broke: branch and bound."""
    robust = ctx.per_sample.get(f"attacked_robust@{eps.label}")
    # a sample an attack broke cannot be certified: no time spent on it
    todo = [k for k in np.flatnonzero(~proved) if robust is None or robust[idx[k]]]
    if not todo:
        return
    data = ctx.eval_set
    rows = idx[todo]
    try:
        result = certify_undecided(graph, ctx.model.runner, data.x[rows], data.y[rows],
                                   eps.value, ctx.domain, margins[todo],
                                   ctx.standard.certified.bab_batches,
                                   ctx.standard.certified.bab_seconds)
    except RuntimeError as exc:  # out of memory or a torch failure: the bounds' answer stands
        bab["failed"] = f"branch and bound failed at eps {eps.label}: {str(exc)[:200]}"
        return
    certified[rows[result.certified]] = True
    bab["tried"] += len(todo)
    bab["certified"] += int(result.certified.sum())
    bab["counterexamples"] += int(result.counterexample.sum())
    bab["undecided"] += len(todo) - int(result.certified.sum() + result.counterexample.sum())
    bab["time_capped"] += int(result.time_capped.sum())
    bab["seconds"] = round(bab["seconds"] + result.seconds, 3)
    if result.certified.any():
        by_method["bab"] = by_method.get("bab", 0) + int(result.certified.sum())


def _cross_check(ctx: RunContext, certified: np.ndarray, label: str) -> None:
    attacked_robust = ctx.per_sample.get(f"attacked_robust@{label}")
    if attacked_robust is None:
        return
    broken = np.flatnonzero(certified & ~attacked_robust)
    if len(broken):
        raise SoundnessError(
            f"soundness bug: sample(s) {broken[:10].tolist()} certified at eps {label} but an "
            "adversarial example (re-checked on onnxruntime) exists; refusing to report")


CHECK = register(Check(NAME, run, declared.METRICS,
                       reads=("correct", "attacked_robust"),
                       writes=("certified",)))
