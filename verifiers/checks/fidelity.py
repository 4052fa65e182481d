"""Torch conversion and its agreement with onnxruntime: the gate for white-box analyses.

Agreement is measured where the analyses look: on the evaluation set AND on random points of
the perturbation set (uniform in the Linf ball of the standard's largest eps, intersected with
the input domain). For a Softmax/LogSoftmax model the cut-off logits are compared as well,
since attacks and bounds read those.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from verifiers.catalogue import fidelity as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.data import InputDomain
from verifiers.errors import IntakeError
from verifiers.model import OnnxRunner, logits_graph, to_torch
from verifiers.model.convert import Agreement, LogitsView, agreement
from verifiers.scorecard import CheckResult

NAME = "fidelity"
SALT = 2  # this check's stream of ctx.generator
# Random perturbation points: one per evaluation sample, at most this many.
MAX_PERTURBATION_POINTS = 1024


def perturbation_points(x: np.ndarray, eps: float, domain: InputDomain,
                        generator: torch.Generator, limit: int) -> np.ndarray:
    """Uniform points of the box [x - eps, x + eps] ∩ [low, high], one per chosen sample."""
    n = len(x)
    if n > limit:
        idx = torch.randperm(n, generator=generator)[:limit].sort().values.numpy()
        x = x[idx]
    lo = np.maximum(x - eps, domain.low)
    hi = np.minimum(x + eps, domain.high)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64).numpy()
    return (lo + (hi - lo) * u).astype(np.float32)


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    tolerance = ctx.standard.fidelity_tolerance
    eps = max(e.value for e in ctx.standard.eps)
    x_eval = ctx.eval_set.x
    x_pert = perturbation_points(x_eval, eps, ctx.domain, ctx.generator(salt=SALT),
                                 MAX_PERTURBATION_POINTS)
    info = ctx.model.info
    details = {"converter": "onnx2pytorch", "points_eval": len(x_eval),
               "points_perturbation": len(x_pert), "perturbation_eps": eps,
               "perturbation_set": "uniform in Linf ball of the largest eps ∩ input range",
               "output_kind": info.output_kind, "logits_from": info.logits_from}
    unit = ctx.standard.fidelity_unit
    try:
        module = to_torch(ctx.model.proto, info.output_kind, ctx.device)
        measured = {"eval": agreement(ctx.model.runner, module, x_eval, ctx.device),
                    "perturbation": agreement(ctx.model.runner, module, x_pert, ctx.device)}
        if isinstance(module, LogitsView) and module.head_cut:
            # The analyses read logits: compare them with onnxruntime on the cut graph too.
            graph, _ = logits_graph(ctx.model.proto, info.output_kind)
            logits_runner = OnnxRunner(graph.SerializeToString(), info)
            measured["logits"] = _worst([agreement(logits_runner, module, x, ctx.device,
                                                   space="logits") for x in (x_eval, x_pert)])
    except IntakeError as exc:
        ctx.white_box_reason = f"no faithful torch conversion ({exc}); white-box analyses not run"
        return CheckResult(NAME, status="inconclusive", reason=str(exc), details=details,
                           seconds=time.perf_counter() - t0)
    metrics: dict[str, float] = {}
    for where, a in measured.items():
        metrics[declared.MAX_ABS_WHERE.key(where=where)] = a.max_abs
        metrics[declared.MAX_REL_WHERE.key(where=where)] = a.max_rel
    worst = _worst(list(measured.values()))
    details |= {"unit": unit, "judged": "max_rel_diff" if unit == "relative" else "max_abs_diff",
                "relative_to": "each sample's output range (max - min of onnxruntime's "
                               "outputs)"}
    judged = worst.max_rel if unit == "relative" else worst.max_abs
    if not math.isfinite(judged):  # NaN/inf on one side only; keep the scorecard valid JSON
        reason = "torch conversion gives non-finite outputs where onnxruntime does not"
        ctx.white_box_reason = f"{reason}; white-box analyses not run"
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        return CheckResult(NAME, status="inconclusive", reason=reason, metrics=finite,
                           details=details, seconds=time.perf_counter() - t0)
    metrics = {"max_abs_diff": worst.max_abs, "max_rel_diff": worst.max_rel,
               "prediction_agreement": worst.same_prediction, **metrics,
               "tolerance": tolerance}
    if judged <= tolerance:
        ctx.module = module
        ctx.white_box_reason = ""
    else:
        key = "max_rel_diff_" if unit == "relative" else "max_abs_diff_"
        where = max((k for k in metrics if k.startswith(key)), key=metrics.get)
        shown = "of the output range" if unit == "relative" else "in output units"
        ctx.white_box_reason = (
            f"torch conversion differs from onnxruntime by {judged:.3g} {shown} ({where}) > "
            f"tolerance {tolerance:.3g}; white-box results are not trusted")
    return CheckResult(NAME, metrics=metrics, details=details,
                       seconds=time.perf_counter() - t0)


def _worst(found: list[Agreement]) -> Agreement:
    return Agreement(max(a.max_abs for a in found), max(a.max_rel for a in found),
                     min(a.same_prediction for a in found), sum(a.rows for a in found))


def restore_module(ctx: RunContext, white_box_reason: str) -> None:
    """Set ``ctx.module`` as :func:`run` did in another process (a shard of a sharded job):
    the conversion is deterministic, so the trusted module is converted again, not re-checked.
    """
    ctx.white_box_reason = white_box_reason
    ctx.module = None
    if not white_box_reason:
        ctx.module = to_torch(ctx.model.proto, ctx.model.info.output_kind, ctx.device)


CHECK = register(Check(NAME, run, declared.METRICS, writes=("module",)))
