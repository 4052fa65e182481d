"""One certification, in process: intake, the battery of checks, the verdict.

The worker and ``robustgate certify`` both call :func:`certify`; the service only stores what
it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from verifiers.checks import BATTERY, RunContext
from verifiers.data import EvalSet, check_against_model, resolve_domain
from verifiers.errors import Cancelled
from verifiers.model import load_model
from verifiers.ood import user_suite
from verifiers.scorecard import (
    SCHEMA_VERSION,
    CheckResult,
    flat_metrics,
    git_revision,
    hardware,
    tool_version,
)
from verifiers.standards import Standard, evaluate

log = logging.getLogger(__name__)

# progress(fraction in [0, 1], stage name); raise Cancelled from it to stop the run.
Progress = Callable[[float, str], None]


def _no_progress(_fraction: float, _stage: str) -> None:
    return None


def certify(model_bytes: bytes, eval_set: EvalSet, standard: Standard, *, seed: int = 0,
            input_range: tuple[float | None, float | None] = (None, None),
            progress: Progress = _no_progress, device: str | None = None,
            batch_size: int = 256, ood_x: np.ndarray | None = None) -> dict[str, Any]:
    """Run the battery and return the scorecard (a JSON-ready dict).

    ``ood_x``: optional out-of-distribution inputs of the user's, an extra OOD suite.
    """
    started = time.time()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    progress(0.0, "intake")
    model = load_model(model_bytes)
    check_against_model(eval_set, model.info.input_shape, model.num_classes)
    domain = resolve_domain(eval_set, *input_range)
    if ood_x is not None:
        user_suite(ood_x, eval_set.x.shape[1:], domain)  # refuse a bad set before any work
    ctx = RunContext(model=model, eval_set=eval_set, standard=standard, domain=domain,
                     device=dev, seed=seed, batch_size=batch_size, ood_x=ood_x)
    span = 0.95 / len(BATTERY)
    for i, check in enumerate(BATTERY):
        base = 0.02 + i * span
        progress(base, check.NAME)
        ctx.progress = lambda f, base=base, name=check.NAME: progress(base + span * f, name)
        log.info("running check %s", check.NAME)
        ctx.results[check.NAME] = check.run(ctx)

    progress(0.98, "verdict")
    checks = ctx.results
    results, verdict, reasons = evaluate(standard, checks)
    card = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "robustgate", "version": tool_version(),
                 "git_revision": git_revision()},
        "model": model.info.as_dict() | {"num_classes": model.num_classes},
        "dataset": {"sha256": eval_set.sha256, "n_samples": len(eval_set),
                    "sample_shape": list(eval_set.x.shape[1:]),
                    "input_range": [domain.low, domain.high]},
        "standard": standard.summary(),
        "seed": seed,
        "hardware": hardware() | {"device": str(dev)},
        "checks": {name: c.as_dict() for name, c in checks.items()},
        "metrics": flat_metrics(checks),
        "criteria": [r.as_dict() for r in results],
        "verdict": verdict,
        "verdict_reasons": reasons,
        "robustbench": _robustbench_fields(checks, standard),
        "timings": {"total_seconds": round(time.time() - started, 4)}
        | {name: round(c.seconds, 4) for name, c in checks.items()},
    }
    progress(1.0, "done")
    return card


def _robustbench_fields(checks: dict[str, CheckResult], standard: Standard) -> dict[str, Any]:
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


def cancel_aware(progress: Progress, cancelled: Callable[[], bool]) -> Progress:
    """Wrap a progress callback so the run stops with :class:`Cancelled` once asked to."""

    def _progress(fraction: float, stage: str) -> None:
        if cancelled():
            raise Cancelled("certification was cancelled")
        progress(fraction, stage)

    return _progress
