"""Calibration of the model's confidence on the evaluation set (onnxruntime, original model).

Metrics: ``ece`` (15 equal-width bins), ``mce``, ``brier``, ``nll``, ``accuracy``,
``mean_confidence``, ``mean_confidence_correct``, ``mean_confidence_misclassified``,
``max_confidence_misclassified``, ``n_misclassified`` and, when the adversarial check left its
confirmed examples in ``ctx.per_sample["adversarial_examples@<eps label>"]`` (a mapping with
``index`` into the evaluation set and ``x_adv``), ``mean_confidence_adversarial@<eps label>``
and ``max_confidence_adversarial@<eps label>``. The reliability diagram is in the details.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from verifiers.catalogue import calibration as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.ood.calibration import (
    brier_score,
    calibration_errors,
    negative_log_likelihood,
    reliability,
)
from verifiers.ood.config import CalibrationConfig
from verifiers.ood.reader import OutputReader
from verifiers.scorecard import CheckResult

NAME = "calibration"
ADVERSARIAL_KEY = "adversarial_examples@{label}"


def run(ctx: RunContext, config: CalibrationConfig | None = None) -> CheckResult:
    t0 = time.perf_counter()
    cfg = config or CalibrationConfig()
    x, y = ctx.eval_set.x, ctx.eval_set.y
    reader = OutputReader(ctx.model, x[:ctx.batch_size], want_logits=False,
                          batch_size=ctx.batch_size)
    probs = reader.read(x).probs
    bad = ~np.all(np.isfinite(probs), axis=1)
    # A NaN/inf output is the worst case: counted wrong, at full confidence.
    confidence = np.where(bad, 1.0, np.nan_to_num(probs).max(axis=1))
    correct = (probs.argmax(axis=1) == y) & ~bad
    diagram = reliability(confidence, correct, cfg.bins)
    ece, mce = calibration_errors(diagram)
    clean = ~bad
    metrics: dict[str, Any] = {
        "ece": ece, "mce": mce, "accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "brier": brier_score(probs[clean], y[clean]) if clean.any() else None,
        "nll": negative_log_likelihood(probs[clean], y[clean]) if clean.any() else None,
        "n_misclassified": int((~correct).sum()),
    }
    not_obtained: dict[str, str] = {}
    for group, mask in (("correct", correct), ("misclassified", ~correct)):
        if mask.any():
            metrics[f"mean_confidence_{group}"] = float(confidence[mask].mean())
            metrics[f"max_confidence_{group}"] = float(confidence[mask].max())
        else:
            for stat in ("mean", "max"):
                not_obtained[f"{stat}_confidence_{group}"] = f"no {group} sample"
    adversarial = _adversarial(ctx, reader, metrics, not_obtained)
    for key in [k for k, v in metrics.items() if v is None]:
        not_obtained[key] = "every output was NaN or infinite"
        del metrics[key]
    details = {
        "split": "evaluation set (every sample)", "n": len(y), "runtime": "onnxruntime",
        "confidence": "top-class probability", "outputs": reader.kind,
        "binning": f"{cfg.bins} equal-width bins over (0, 1]; bin b holds ((b-1)/B, b/B]",
        "reliability_diagram": [b.as_dict() for b in diagram],
        "non_finite_outputs": int(bad.sum()),
        "adversarial_examples": adversarial,
        "not_obtained": not_obtained,
    }
    return CheckResult(NAME, metrics=metrics, details=details, seconds=time.perf_counter() - t0)


def _adversarial(ctx: RunContext, reader: OutputReader, metrics: dict[str, Any],
                 not_obtained: dict[str, str]) -> dict[str, Any]:
    """Confidence on the confirmed adversarial examples the adversarial check left, per eps."""
    seen: dict[str, Any] = {}
    for eps in ctx.standard.eps:
        entry = ctx.per_sample.get(ADVERSARIAL_KEY.format(label=eps.label))
        keys = [f"{s}_confidence_adversarial@{eps.label}" for s in ("mean", "max")]
        if entry is None or len(entry["x_adv"]) == 0:
            why = ("the adversarial check left no examples" if entry is None
                   else "no confirmed adversarial example at this eps")
            not_obtained.update(dict.fromkeys(keys, why))
            seen[eps.label] = {"n": 0, "reason": why}
            continue
        probs = reader.read(np.asarray(entry["x_adv"], dtype=np.float32)).probs
        conf = np.where(np.all(np.isfinite(probs), axis=1), np.nan_to_num(probs).max(axis=1), 1.0)
        metrics[keys[0]], metrics[keys[1]] = float(conf.mean()), float(conf.max())
        seen[eps.label] = {"n": len(conf), "source": "adversarial check (onnxruntime-confirmed)"}
    return seen


CHECK = register(Check(NAME, run, declared.METRICS, reads=("correct", "adversarial_examples")))
