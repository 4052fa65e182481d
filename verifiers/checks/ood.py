"""Out-of-distribution overconfidence: synthetic suites, an uploaded set, fooling images.

Metrics ``<suite>.<auroc|fpr95|aupr>.<msp|max_logit|energy>``, ``<suite>.mean_confidence``,
``<suite>.max_confidence``, ``worst.*`` over the non-adversarial suites, ``worst_in_range.*``
over those inside the valid input range, and the same under ``adversarial.`` for the fooling
images. A metric that could not be obtained is absent from ``metrics`` (so a criterion on it
is INCONCLUSIVE) and listed with its reason under ``details.not_obtained``, keyed by a glob
pattern over metric keys.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from verifiers.catalogue import ood as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.errors import SoundnessError
from verifiers.ood.adversarial import FoolingResult, fooling_search, inside
from verifiers.ood.certified import (
    NOT_WIRED,
    ConfidenceBound,
    check_against_attack,
    engine_bound,
)
from verifiers.ood.config import OodConfig
from verifiers.ood.metrics import fpr_key
from verifiers.ood.reader import OutputReader
from verifiers.ood.report import suite_details, suite_metrics, worst_case
from verifiers.ood.scores import (
    DEFINITIONS,
    SIGN_CONVENTION,
    Scores,
    confidence_summary,
    scores_from,
)
from verifiers.ood.suites import build_suites, user_suite
from verifiers.scorecard import CheckResult

NAME = "ood"
_SALT_SUITES, _SALT_FOOLING = 61, 62  # distinct from every other check's salt


def run(ctx: RunContext, config: OodConfig | None = None,
        bound: ConfidenceBound | None = None) -> CheckResult:
    """``bound``: the certified-confidence hook, filled by the bound engine once it exists."""
    t0 = time.perf_counter()
    cfg = config or ctx.standard.ood
    x_id = ctx.eval_set.x
    reader = OutputReader(ctx.model, x_id[:ctx.batch_size], batch_size=ctx.batch_size)
    id_scores = _scores(reader, x_id)
    seed = int(torch.randint(0, 2**62, (1,), generator=ctx.generator(_SALT_SUITES)))
    suites = build_suites(x_id, ctx.domain, cfg, seed)
    if ctx.ood_x is not None:
        suites.append(user_suite(ctx.ood_x, x_id.shape[1:], ctx.domain))
    metrics: dict[str, Any] = {}
    details_suites: dict[str, Any] = {}
    not_obtained: dict[str, str] = {}
    for i, suite in enumerate(suites):
        ctx.progress(0.5 * i / len(suites))
        scores = _scores(reader, suite.x)
        found, missing = suite_metrics(suite.name, id_scores, scores, cfg.tpr_level)
        metrics.update(found)
        for score in missing:
            not_obtained[f"*.{score}"] = reader.logits_reason or "logits unavailable"
        details_suites[suite.name] = suite_details(len(suite.x), suite.description,
                                                   suite.in_valid_range, scores)
    metrics.update(worst_case(metrics, [s.name for s in suites], cfg.tpr_level))
    metrics.update(worst_case(metrics, [s.name for s in suites if s.in_valid_range],
                              cfg.tpr_level, prefix="worst_in_range"))
    ctx.progress(0.5)
    bound = bound if bound is not None else engine_bound(ctx)
    adv_metrics, adv_details, adv_missing = _adversarial(ctx, cfg, reader, id_scores, bound)
    metrics.update(adv_metrics)
    not_obtained.update(adv_missing)
    details = {
        "in_distribution": {"split": "evaluation set (every sample)", "n": len(x_id),
                            "sha256": ctx.eval_set.sha256,
                            "non_finite_outputs": int(id_scores.non_finite.sum())},
        "positive_class": "in-distribution",
        "sign_convention": SIGN_CONVENTION,
        "scores": DEFINITIONS,
        "metric_definitions": {
            "auroc": "area under ROC (trapezoids; tied scores count one half)",
            fpr_key(cfg.tpr_level): f"fraction of OOD inputs accepted at the highest "
                                    f"threshold accepting >= {cfg.tpr_level:g} of ID inputs",
            "aupr": "AUPR-In as average precision (ID positive)",
            "mean_confidence": "mean top-class probability on the OOD inputs",
            "max_confidence": "max top-class probability on the OOD inputs",
            "non_finite": "NaN/inf outputs count as detector failures and confidence 1",
        },
        "outputs": {"kind": reader.kind, "logits_from": reader.logit_source,
                    "runtime": "onnxruntime"},
        "suites": details_suites,
        "worst_over": [s.name for s in suites],
        "worst_in_range_over": [s.name for s in suites if s.in_valid_range],
        "adversarial": adv_details,
        "not_obtained": not_obtained,
        "config": asdict(cfg),
        "seed": ctx.seed,
    }
    ctx.progress(1.0)
    return CheckResult(NAME, metrics=metrics, details=details, seconds=time.perf_counter() - t0)


def _scores(reader: OutputReader, x: np.ndarray) -> Scores:
    out = reader.read(x)
    return scores_from(out.probs, out.logits)


def _adversarial(ctx: RunContext, cfg: OodConfig, reader: OutputReader, id_scores: Scores,
                 bound: ConfidenceBound | None) -> tuple[dict, dict, dict[str, str]]:
    """Fooling images from noise; (metrics, details, not obtained)."""
    if ctx.module is None:
        reason = f"white-box search not run: {ctx.white_box_reason}"
        return {}, {"status": "inconclusive", "reason": reason}, {"adversarial.*": reason}
    acfg = cfg.adversarial
    found = fooling_search(ctx.module, ctx.domain, acfg, ctx.generator(_SALT_FOOLING),
                           ctx.device, tuple(ctx.eval_set.x.shape[1:]), ctx.batch_size)
    if not inside(found.x_adv, found.centres, found.eps, ctx.domain).all():
        raise SoundnessError("an adversarial OOD point left its ball or the input range")
    scores = _scores(reader, found.x_adv)
    start = _scores(reader, found.centres)
    metrics, missing = suite_metrics("adversarial", id_scores, scores, cfg.tpr_level)
    not_obtained = {f"adversarial.*.{s}": reader.logits_reason for s in missing}
    reached = np.where(np.isnan(scores.msp), 1.0, scores.msp)
    details: dict[str, Any] = {
        "status": "ok", "start": "uniform noise on the input range (the ball centres)",
        "objective": "max_k log softmax_k, signed-gradient ascent on the torch module",
        "norm": "linf", "eps": found.eps, "eps_fraction_of_range": acfg.eps_fraction,
        "steps": acfg.steps, "restarts": acfg.restarts, "step_size": acfg.step(found.eps),
        "samples": acfg.samples, "forward_passes": found.forward_passes,
        "backward_passes": found.backward_passes,
        "confirmed_on": "onnxruntime, original model, after clipping into the ball and range",
        "confidence_at_start": confidence_summary(start.msp),
        # Rows where onnxruntime gave NaN/inf are counted in the suite, not in this gap.
        "torch_vs_onnxruntime_max_diff": float(np.max(
            np.abs(found.torch_confidence - reached), where=~scores.non_finite, initial=0.0)),
    }
    details["certified_upper_bound"], certified = _certified(bound, found, reached, ctx)
    if certified is None:
        not_obtained["adversarial.certified_max_confidence"] = details[
            "certified_upper_bound"]["reason"]
    else:
        metrics["adversarial.certified_max_confidence"] = certified
    return metrics, details, not_obtained


def _certified(bound: ConfidenceBound | None, found: FoolingResult, reached: np.ndarray,
               ctx: RunContext) -> tuple[dict[str, Any], float | None]:
    if bound is None:
        return {"status": "not obtained", "reason": NOT_WIRED}, None
    upper = np.asarray(bound(found.centres, found.eps, ctx.domain), dtype=np.float64)
    check_against_attack(upper, reached)
    unbounded = int(np.sum(~np.isfinite(upper)))
    if unbounded:
        reason = f"the bound engine could not bound {unbounded} of {len(upper)} balls"
        return {"status": "not obtained", "reason": reason}, None
    return {"status": "ok", "max": float(upper.max()), "mean": float(upper.mean())}, \
        float(upper.max())


CHECK = register(Check(NAME, run, declared.METRICS, reads=("module",)))
