"""Explainability: attributions, their randomisation sanity, stability, faithfulness and mask
reliance (the science is in verifiers/explain; this module runs it and judges what it got).
It runs when the standard asks for it (an ``explain:`` section or an ``explain.*``
criterion); otherwise it is skipped with that reason, as smoothing is.

A seeded subset of the evaluation set (the standard's ``explain.samples``) is explained for
its labels: integrated gradients (or gradient x input) on the trusted torch conversion, or
occlusion on onnxruntime when there is none (``ctx.white_box_reason``). Then:

- ``sanity.randomization_similarity``: the same attribution on the model with every weight
  layer re-initialised (cascading from the top; the last stage is the metric, every stage is
  in ``details.cascade``). Above the standard's ``randomization_threshold`` the explanation
  does not reflect what the model learned, and every figure computed from the attributions
  (sensitivity, deletion/insertion, relevance mass) is marked ``partial``: criteria on them
  are INCONCLUSIVE with that reason, never PASS. So they are when the randomisation could not
  run. The criterion on the similarity itself is judged as usual, so it can FAIL.
- ``max_sensitivity``, ``deletion_auc``, ``insertion_auc`` on the same subset.
- with the evaluation set's ``mask``: ``relevance_mass_in_mask`` (subset) and the accuracies
  with the background removed or swapped (every sample, onnxruntime, with counts for a
  standard's confidence). The accuracies use no attribution, so the sanity gate leaves them
  alone. Without a mask these are absent: "no masks in the evaluation set".

``details.maps`` holds a few samples' input and attribution maps (downsampled to at most
32 x 32) for the report, with the same samples' confirmed adversarial examples when the
adversarial check left some (``ctx.per_sample``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from verifiers.catalogue import explain as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.errors import IntakeError
from verifiers.explain import (
    Attributor,
    background_accuracy,
    cascade,
    deletion_insertion,
    donors,
    max_sensitivity,
    occlusion,
    relevance_mass,
    spearman,
    white_box,
)
from verifiers.model import OnnxRunner, to_torch
from verifiers.scorecard import CheckResult

NAME = "explain"
SALT = 4
NO_MASKS = "no masks in the evaluation set"
SKIPPED = "the standard asks for no explanations (no explain section or criterion)"
MASK_KEYS = ("relevance_mass_in_mask", "accuracy_background_removed",
             "accuracy_background_swapped")
FROM_ATTRIBUTIONS = ("max_sensitivity", "deletion_auc", "insertion_auc",
                     "relevance_mass_in_mask")
SIMILARITY = "sanity.randomization_similarity"
MAPS = 4            # samples whose maps go to the report
MAP_SIDE = 32       # maps are average-pooled down to at most this many cells a side
MAX_STAGES = 8      # cascade stages measured (evenly spaced, the full randomisation last)


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    if not ctx.standard.explain_requested:
        return CheckResult(NAME, details={"skipped": SKIPPED, "not_obtained": {"*": SKIPPED}})
    spec, data = ctx.standard.explain, ctx.eval_set
    gen = ctx.generator(SALT)
    idx = _subset(len(data), spec.samples, gen)
    x, y = data.x[idx], data.y[idx]
    attributor = _attributor(ctx, ctx.module, ctx.model.runner)
    details: dict[str, Any] = {
        "method": attributor.method, "runtime": attributor.runtime,
        "why_not_white_box": ctx.white_box_reason if ctx.module is None else "",
        "target": "the label", "subset": idx.tolist(), "settings": vars(spec).copy(),
        "captum": "IntegratedGradients / InputXGradient / Occlusion, sensitivity_max",
    }
    metrics: dict[str, Any] = {"n_samples": len(idx)}
    not_obtained: dict[str, str] = {}
    partial: dict[str, str] = {}
    attr = attributor(x, y)
    ctx.progress(0.2)
    if not np.all(np.isfinite(attr)):
        why = "the attributions are not finite (NaN or infinite gradients or scores)"
        return CheckResult(NAME, status="inconclusive", reason=why, metrics=metrics,
                           details=details | {"not_obtained": {"*": why}},
                           seconds=time.perf_counter() - t0)

    gate = _randomisation(ctx, x, y, attr, metrics, details, not_obtained)
    if gate:
        partial.update({key: gate for key in FROM_ATTRIBUTIONS})
    ctx.progress(0.6)
    in_domain = ctx.domain.low <= spec.baseline <= ctx.domain.high
    outside = (f"the neutral value {spec.baseline:g} lies outside the input domain "
               f"[{ctx.domain.low:g}, {ctx.domain.high:g}]")
    sens = max_sensitivity(attributor, x, y, spec.radius, spec.perturbations, ctx.domain,
                           ctx.generator(SALT + 1))
    finite = sens[np.isfinite(sens)]
    if len(finite):
        metrics["max_sensitivity"] = float(finite.mean())
        details["max_sensitivity"] = {"median": float(np.median(finite)),
                                      "max": float(finite.max()), "radius": spec.radius,
                                      "draws": spec.perturbations, "norm": "Frobenius"}
    else:
        not_obtained["max_sensitivity"] = "every sensitivity was NaN or infinite"
    ctx.progress(0.8)
    runner, kind = ctx.model.runner, ctx.model.info.output_kind
    if in_domain:
        deletion, insertion = deletion_insertion(runner, kind, x, y, attr, spec.baseline,
                                                 spec.deletion_steps, ctx.batch_size)
        metrics["deletion_auc"] = float(deletion.mean())
        metrics["insertion_auc"] = float(insertion.mean())
        details["faithfulness"] = {"steps": spec.deletion_steps, "unit": "input values",
                                   "probability": "target-class probability (onnxruntime)"}
    else:
        not_obtained.update({"deletion_auc": outside, "insertion_auc": outside})
    _masks(ctx, idx, attr, metrics, details, not_obtained, outside if not in_domain else "")
    details["maps"] = _maps(ctx, attributor, idx, attr)
    ctx.progress(1.0)
    if not_obtained:
        details["not_obtained"] = not_obtained
    partial = {k: v for k, v in partial.items() if k in metrics}
    if partial:
        details["partial"] = partial
    return CheckResult(NAME, reason=gate, metrics=metrics, details=details,
                       seconds=time.perf_counter() - t0)


def _subset(n: int, samples: int, gen: torch.Generator) -> np.ndarray:
    if n <= samples:
        return np.arange(n)
    return np.sort(torch.randperm(n, generator=gen)[:samples].numpy())


def _attributor(ctx: RunContext, module: torch.nn.Module | None,
                runner: OnnxRunner) -> Attributor:
    spec = ctx.standard.explain
    if module is not None:
        return white_box(module, spec.method, spec.baseline, spec.steps, ctx.device)
    return occlusion(runner, spec.baseline, spec.window, tuple(ctx.eval_set.x.shape[1:]))


def _randomisation(ctx: RunContext, x: np.ndarray, y: np.ndarray, attr: np.ndarray,
                   metrics: dict[str, Any], details: dict[str, Any],
                   not_obtained: dict[str, str]) -> str:
    """Measure the cascade; return the reason the attribution figures cannot PASS, or ""."""
    spec = ctx.standard.explain
    stages = cascade(ctx.model.proto, ctx.seed * 1_000_003 + SALT)
    if not stages:
        why = "the model has no weight layers (Conv, Gemm, MatMul) to re-initialise"
        not_obtained[SIMILARITY] = why
        return f"the randomisation sanity check could not run: {why}"
    measured = min(MAX_STAGES, len(stages))
    keep = sorted({round(i * (len(stages) - 1) / max(measured - 1, 1))
                   for i in range(measured)})
    rows = []
    try:
        for k in keep:
            layer, proto = stages[k]
            module, runner = None, None
            if ctx.module is not None:
                module = to_torch(proto, ctx.model.info.output_kind, ctx.device)
            else:
                runner = OnnxRunner(proto.SerializeToString(), ctx.model.info)
            assert runner is not None or module is not None
            rand = _attributor(ctx, module, runner or ctx.model.runner)(x, y)
            rho = spearman(attr, rand)
            ok = np.isfinite(rho)
            rows.append({"layers_randomised": k + 1, "down_to": layer,
                         "similarity": float(rho[ok].mean()) if ok.any() else None,
                         "similarity_abs": _nanmean(spearman(np.abs(attr), np.abs(rand))),
                         "skipped_constant": int((~ok).sum())})
    except IntakeError as exc:
        not_obtained[SIMILARITY] = f"the re-initialised model could not be run: {exc}"
        return f"the randomisation sanity check could not run: {exc}"
    details["cascade"] = rows
    details["randomization"] = {
        "layers": len(stages), "init": "normal with each tensor's standard deviation, seeded",
        "similarity": "Spearman rank correlation of the signed maps, mean over samples",
        "threshold": spec.randomization_threshold}
    final = rows[-1]["similarity"]
    if final is None:
        why = "every attribution map is constant, so no rank correlation exists"
        not_obtained[SIMILARITY] = why
        return f"the randomisation sanity check could not run: {why}"
    metrics[SIMILARITY] = final
    if final > spec.randomization_threshold:
        return (f"the attributions barely change when the model's weights are re-initialised "
                f"(randomization_similarity {final:.3g} > the standard's "
                f"randomization_threshold {spec.randomization_threshold:g}): the explanation "
                "does not reflect what the model learned")
    return ""


def _nanmean(values: np.ndarray) -> float | None:
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else None


def _masks(ctx: RunContext, idx: np.ndarray, attr: np.ndarray, metrics: dict[str, Any],
           details: dict[str, Any], not_obtained: dict[str, str], outside: str) -> None:
    data, spec = ctx.eval_set, ctx.standard.explain
    if data.mask is None:
        not_obtained.update({key: NO_MASKS for key in MASK_KEYS})
        return
    mass = relevance_mass(attr, data.mask[idx])
    ok = np.isfinite(mass)
    if ok.any():
        metrics["relevance_mass_in_mask"] = float(mass[ok].mean())
    else:
        not_obtained["relevance_mass_in_mask"] = "no sample has positive attribution"
    counts: dict[str, list[list[int]]] = {}
    donor = donors(data.y, ctx.generator(SALT + 2))
    backgrounds: dict[str, Any] = {"accuracy_background_swapped": data.x[donor]}
    if outside:
        not_obtained["accuracy_background_removed"] = outside
    else:
        backgrounds = {"accuracy_background_removed": spec.baseline} | backgrounds
    for key, background in backgrounds.items():
        correct = background_accuracy(ctx.model.runner, data.x, data.y, data.mask, background,
                                      ctx.batch_size)
        metrics[key] = float(correct.mean())
        counts[key] = [[int(correct.sum()), len(correct)]]
    details["counts"] = counts
    details["masks"] = {"samples_without_positive_attribution": int((~ok).sum()),
                        "background_removed_with": spec.baseline,
                        "background_swapped_from": "a seeded other sample of another label"}


def _maps(ctx: RunContext, attributor: Attributor, idx: np.ndarray,
          attr: np.ndarray) -> list[dict[str, Any]]:
    """A few samples' maps for the report; adversarial ones next to them when there are."""
    data = ctx.eval_set
    adv_eps, adv = None, None
    for eps in ctx.standard.eps:
        found = ctx.per_sample.get(f"adversarial_examples@{eps.label}")
        if found is not None and len(found["index"]):
            adv_eps, adv = eps.label, found
            break
    if adv is not None:
        chosen = np.asarray(adv["index"][:MAPS], dtype=np.int64)
        x_adv = np.asarray(adv["x_adv"][:MAPS], dtype=np.float32)
        a_clean = attributor(data.x[chosen], data.y[chosen])
        a_adv = attributor(x_adv, data.y[chosen])
        pred_adv = ctx.model.runner.predict(x_adv)
    else:
        pos = np.arange(min(MAPS, len(idx)))
        chosen, a_clean = idx[pos], attr[pos]
    pred = ctx.model.runner.predict(data.x[chosen])
    maps = []
    for i, j in enumerate(chosen.tolist()):
        entry: dict[str, Any] = {"index": j, "label": int(data.y[j]), "prediction": int(pred[i]),
                                 "input": _small(data.x[j], "mean"),
                                 "attribution": _small(a_clean[i], "sum")}
        if data.mask is not None:
            entry["mask"] = _small(data.mask[j].astype(np.float32), "max")
        if adv is not None:
            entry["adversarial"] = {"eps": adv_eps, "prediction": int(pred_adv[i]),
                                    "input": _small(x_adv[i], "mean"),
                                    "attribution": _small(a_adv[i], "sum")}
        maps.append(entry)
    return maps


def _small(sample: np.ndarray, reduce: str) -> list[list[float]]:
    """A 2-D map of one sample: channels reduced, average-pooled to at most MAP_SIDE a side,
    rounded (JSON stays small)."""
    a = np.asarray(sample, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim > 2:
        lead = a.reshape(-1, *a.shape[-2:])
        a = {"mean": lead.mean, "sum": lead.sum, "max": lead.max}[reduce](axis=0)
    fy, fx = (math.ceil(s / MAP_SIDE) for s in a.shape)
    if fy > 1 or fx > 1:
        h, w = a.shape[0] // fy * fy, a.shape[1] // fx * fx
        a = a[:h, :w].reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))
    return [[round(float(v), 5) for v in row] for row in a]


CHECK = register(Check(NAME, run, declared.METRICS, reads=("module", "adversarial_examples")))
