"""Randomized-smoothing certificates (Cohen et al. 2019) when the standard asks for them.

Runs only when the standard has a ``smoothing:`` section or a criterion on ``smoothing.*``;
otherwise it returns at once, marked skipped. The base classifier is the trusted torch
conversion on the run's device when the fidelity check accepted it, else onnxruntime on the
CPU. The science lives in verifiers.smoothing; this module picks the samples, runs CERTIFY and
PREDICT, and states the limits of what was certified in the details.

Certified figures are about the SMOOTHED classifier, so they are not cross-checked against the
attacks (which attack the uploaded model). A listed radius beyond what N estimation samples can
certify at alpha is not obtained: criteria on it are INCONCLUSIVE with the reason.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from verifiers.catalogue import smoothing as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.scorecard import CheckResult
from verifiers.smoothing import (
    ABSTAIN,
    PRESETS,
    BaseClassifier,
    Certificates,
    SmoothingConfig,
    certify_samples,
    max_radius,
    onnx_base,
    torch_base,
)
from verifiers.smoothing.config import DEFAULT_PRESET

NAME = "smoothing"
SALT = 71  # this check's stream of ctx.generator
SKIPPED = "the standard asks for no smoothing certificate (no smoothing section or criterion)"
FLOATING_POINT = (
    "probabilistic, not floating-point sound: the certificate holds in real arithmetic with "
    "probability >= 1 - alpha per sample; published work (Voracek & Hein, 'Sound randomized "
    "smoothing in floating-point arithmetic', 2023) shows float32 smoothing can certify inputs "
    "that are not robust. No radius margin is applied, since none would make it sound.")


def wanted(ctx: RunContext) -> bool:
    std = ctx.standard
    return std.smoothing is not None or any(c.check == NAME for c in std.criteria)


def config(ctx: RunContext) -> SmoothingConfig:
    return ctx.standard.smoothing or PRESETS[DEFAULT_PRESET]


def subset(n: int, samples: int) -> np.ndarray:
    """Evenly spaced evaluation samples (Cohen et al. certify every 20th test image)."""
    if samples <= 0 or samples >= n:
        return np.arange(n)
    return (np.arange(samples) * n) // samples


def base_classifier(ctx: RunContext, cfg: SmoothingConfig) -> BaseClassifier:
    if ctx.module is not None:
        return torch_base(ctx.module, ctx.device, ctx.model.num_classes, cfg.batch)
    return onnx_base(ctx.model.runner, ctx.model.num_classes, cfg.batch)


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    if not wanted(ctx):
        return CheckResult(NAME, details={"skipped": SKIPPED, "not_obtained": {"*": SKIPPED}})
    cfg = config(ctx)
    data = ctx.eval_set
    index = subset(len(data), cfg.samples)
    base = base_classifier(ctx, cfg)
    seed = int(torch.randint(0, 2**62, (1,), generator=ctx.generator(SALT)))
    details = _limits(ctx, cfg, base, index)
    try:
        certs = certify_samples(base, data.x, index, cfg, seed, ctx.progress)
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        return CheckResult(NAME, status="inconclusive", details=details, reason=(
            f"out of memory with {cfg.batch} noisy copies per pass ({type(exc).__name__}); "
            "lower smoothing.batch"), seconds=time.perf_counter() - t0)
    metrics, more = measure(certs, data.y[index], cfg)
    return CheckResult(NAME, metrics=metrics, details=details | more,
                       seconds=time.perf_counter() - t0)


def measure(certs: Certificates, y: np.ndarray,
            cfg: SmoothingConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and their details from the certificates of samples with labels ``y``."""
    n = len(y)
    right = certs.certified_class == y
    abstained = certs.certified_class == ABSTAIN
    predicted_right = certs.predicted_class == y
    cap = max_radius(cfg.sigma, cfg.n, cfg.alpha)
    metrics: dict[str, Any] = {
        "clean_accuracy": float(predicted_right.mean()),
        "abstain_rate": float(abstained.mean()),
        "average_certified_radius": float(np.where(right, certs.radius, 0.0).mean()),
        "max_certifiable_radius": cap,
        "n_samples": n,
    }
    counts = {"clean_accuracy": [[int(predicted_right.sum()), n]],
              "abstain_rate": [[int(abstained.sum()), n]]}
    not_obtained: dict[str, str] = {}
    curve = []
    for r in cfg.radii:
        key = declared.CERTIFIED.key(radius=r.label)
        if r.value > cap:
            not_obtained[key] = (
                f"radius {r.label} exceeds the largest radius {cap:.4g} that n = {cfg.n} "
                f"estimation samples can certify at alpha = {cfg.alpha:g} (sigma * "
                f"Phi^-1(alpha^(1/n)), sigma = {cfg.sigma:g}); raise smoothing.n or sigma")
            continue
        hit = right & (certs.radius >= r.value)
        metrics[key] = float(hit.mean())
        counts[key] = [[int(hit.sum()), n]]
        curve.append({"radius": r.value, "radius_label": r.label,
                      "certified_accuracy": float(hit.mean()), "n_certified": int(hit.sum())})
    more: dict[str, Any] = {
        "curve": curve, "counts": counts,
        # Each certificate errs with probability <= alpha: lower bounds in that sense.
        "lower_bounds": ["certified_accuracy@*", "average_certified_radius"],
        "per_sample": {"index": certs.index.tolist(),
                       "certified_class": certs.certified_class.tolist(),
                       "radius": [round(float(r), 6) for r in certs.radius],
                       "p_lower": [round(float(p), 6) for p in certs.p_lower],
                       "predicted_class": certs.predicted_class.tolist()},
    }
    if not_obtained:
        more["not_obtained"] = not_obtained
    return metrics, more


def _limits(ctx: RunContext, cfg: SmoothingConfig, base: BaseClassifier,
            index: np.ndarray) -> dict[str, Any]:
    """What the certificate is about and what it is not, for the scorecard."""
    dims = int(np.prod(ctx.eval_set.x.shape[1:]))
    cap = max_radius(cfg.sigma, cfg.n, cfg.alpha)
    engine = ("the trusted torch conversion (agrees with onnxruntime within the fidelity "
              "tolerance; an argmax tie under noise may still differ)" if base.engine == "torch"
              else f"onnxruntime ({ctx.white_box_reason or 'no trusted torch conversion'})")
    details: dict[str, Any] = {
        "certificate_of": (
            f"the SMOOTHED classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c), sigma = "
            f"{cfg.sigma:g}, not the uploaded model f: the deployment must run g (majority vote "
            "over Gaussian noise, abstaining as PREDICT does) for these radii to apply"),
        "algorithm": "CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter 2019; PREDICT reads "
                     "CERTIFY's N estimation draws",
        "floating_point": FLOATING_POINT,
        "norm": "l2",
        "linf_equivalent": f"an L2 radius r covers the Linf ball of radius r / sqrt({dims})",
        "noise": (f"i.i.d. N(0, {cfg.sigma:g}^2) on each of the {dims} input values, in the "
                  f"standard's input units ([{ctx.domain.low:g}, {ctx.domain.high:g}]), not "
                  "clipped to the input range"),
        "config": cfg.as_dict(),
        "tier": cfg.preset,
        "base_classifier": engine,
        "device": str(base.device),
        "samples": (f"{len(index)} of {len(ctx.eval_set)} evaluation samples, evenly spaced"
                    if len(index) < len(ctx.eval_set) else "every evaluation sample"),
        "max_certifiable_radius": cap,
        "not_cross_checked": "certificates are about g, the attacks attack f: no per-sample "
                             "cross-check with the adversarial check",
    }
    if cfg.cheap:
        details["cheap_tier"] = (
            f"CPU tier: n0 = {cfg.n0}, n = {cfg.n} noise samples (published: 100 and 100,000): "
            f"wider Clopper-Pearson bounds, smaller radii, none above {cap:.3g}; not comparable "
            "with published figures")
    if not math.isfinite(cap):
        details["max_certifiable_radius"] = None
    return details


CHECK = register(Check(NAME, run, declared.METRICS, reads=("module",)))
