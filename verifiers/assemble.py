"""The scorecard of a finished run: the checks' results, the standard's verdict, provenance.

Its own module so the finish step (verifiers.run_plan) builds it whichever executor ran the
job; the executors never assemble a scorecard themselves.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from verifiers.checks import BATTERY, RunContext
from verifiers.device import describe
from verifiers.scorecard import (
    SCHEMA_VERSION,
    CheckResult,
    flat_metrics,
    git_revision,
    hardware,
    tool_version,
)
from verifiers.standards import Standard, evaluate


def scorecard(ctx: RunContext, started: float) -> dict[str, Any]:
    """The scorecard of the checks in ``ctx.results`` (``started``: epoch seconds, for the
    total time)."""
    standard, model, eval_set, domain = ctx.standard, ctx.model, ctx.eval_set, ctx.domain
    checks = {c: ctx.results[c] for c in (m.name for m in BATTERY) if c in ctx.results}
    results, verdict, reasons = evaluate(standard, checks, n_samples=len(eval_set))
    card = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "robustgate", "version": tool_version(),
                 "git_revision": git_revision()},
        "model": model.info.as_dict() | {"num_classes": model.num_classes},
        "dataset": {"sha256": eval_set.sha256, "n_samples": len(eval_set),
                    "sample_shape": list(eval_set.x.shape[1:]),
                    "input_range": [domain.low, domain.high],
                    "input_domain": standard.input_domain.as_dict()
                    if standard.input_domain else None,
                    "input_mapping": ctx.mapping.as_dict() if ctx.mapping else None,
                    "n_groups": None if eval_set.group is None
                    else int(len(np.unique(eval_set.group)))},
        "standard": standard.summary(),
        "seed": ctx.seed,
        "hardware": hardware() | describe(ctx.device),
        "checks": {name: c.as_dict() for name, c in checks.items()},
        "metrics": flat_metrics(checks),
        "criteria": [r.as_dict() for r in results],
        "verdict": verdict,
        "verdict_reasons": reasons,
        "robustbench": robustbench_fields(checks, standard),
        "timings": {"total_seconds": round(time.time() - started, 4)}
        | {name: round(c.seconds, 4) for name, c in checks.items()},
    }
    if standard.time_limit_s is not None:
        card["time_limit"] = _time_limit(ctx, checks)
    return card


def _time_limit(ctx: RunContext, checks: dict[str, CheckResult]) -> dict[str, Any]:
    """The standard's time limit and the checks it cut."""
    cut = [name for name, c in checks.items() if "time_limit" in c.details]
    return {"seconds": ctx.standard.time_limit_s, "reached": bool(cut), "checks_cut": cut}


def robustbench_fields(checks: dict[str, CheckResult], standard: Standard) -> dict[str, Any]:
    """The per-model fields RobustBench publishes, so numbers line up with the field's.

    ``autoattack_acc`` is pyautoattack's standard AutoAttack (when the standard selects
    ``autoattack-standard``), ``robust_acc`` the battery's pointwise worst case; both after the
    onnxruntime re-check, at the primary eps. Figures are withheld unless the adversarial check
    is "ok" (white-box evidence, no gradient-masking finding).
    """
    adv = checks.get("adversarial")
    first = standard.eps[0]
    ok = adv is not None and adv.status == "ok"
    metrics = adv.metrics if ok and adv is not None else {}
    return {
        "clean_acc": checks["clean"].metrics.get("accuracy"),
        "autoattack_acc": metrics.get(f"autoattack.robust_accuracy@{first.label}"),
        "robust_acc": metrics.get(f"robust_accuracy@{first.label}"),
        "eps": first.label,
        "threat_model": standard.norm.capitalize(),
        "number_forward_passes": metrics.get("forward_passes"),
    }
