"""Certified robust accuracy from the bound engine, cross-checked against the attacks.

"We attacked and failed" becomes "no perturbation in the set can change the prediction".
Per sample, certified <= attacked-robust <= clean: a sample both certified and successfully
attacked is a soundness bug and fails the run loudly (SoundnessError).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from verifiers.bounds import BoundConfig, Method, certify_samples
from verifiers.bounds.cost import refinement_cost
from verifiers.catalogue import certified as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.errors import IntakeError, SoundnessError, VerifierError
from verifiers.scorecard import CheckResult

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
    if method is not Method.IBP and (cost := refinement_cost(graph)) > CROWN_MAX_COST:
        # IBP figures stay sound lower bounds, but they are not what the standard asked for.
        reason = (f"{method.value} not run: its refinement would move about {cost:.1e} numbers "
                  f"per sample (limit {CROWN_MAX_COST:.0e}); figures are IBP's only")
        method, partial = Method.IBP, {"certified_accuracy@*": reason}
    data = ctx.eval_set
    # Only correctly classified samples can be certified; a sample not certified at a
    # smaller eps cannot be at a larger one.
    alive = ctx.correct.copy()
    metrics: dict[str, Any] = {}
    counts: dict[str, list[list[int]]] = {}
    curve, by_method = [], {}
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
        _cross_check(ctx, certified, eps.label)
        alive &= certified
        acc = float(certified.sum() / len(data))
        metrics[f"certified_accuracy@{eps.label}"] = acc
        counts[f"certified_accuracy@{eps.label}"] = [[int(certified.sum()), len(data)]]
        curve.append({"eps": eps.value, "eps_label": eps.label, "certified_accuracy": acc,
                      "n_certified": int(certified.sum())})
        ctx.per_sample[f"certified@{eps.label}"] = certified
    return CheckResult(
        NAME, metrics=metrics,
        details={"method": method.value, "curve": curve,
                 "certified_by": by_method, "note": note, "counts": counts,
                 "soundness": "every certified sample was checked against the attacks",
                 # certified accuracy can only be an under-estimate of true robust accuracy
                 "lower_bounds": ["certified_accuracy@*"]}
        | ({"partial": partial, "crown_skipped": next(iter(partial.values()))}
           if partial else {}),
        seconds=time.perf_counter() - t0)


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
