"""One certification: intake, the battery of checks, the verdict.

Three steps, so a job can be sharded across workers (workers.tasks) and still give the figures
an in-process run gives (``robustgate certify`` runs the same steps in one process):

1. :func:`prepare`: intake, the clean and fidelity checks; :func:`save_prepared` keeps what the
   later steps need (:func:`restore` rebuilds the context from it in another process);
2. ``verifiers.checks.adversarial.attack_chunk`` per planned chunk (verifiers.plan);
3. :func:`finish`: the adversarial summary over all chunks, the remaining checks, the verdict.

A standard's ``time_limit_s`` counts from the job's start (``started``, shared by every step):
a check it cuts, and every check after, is INCONCLUSIVE with the reason
(verifiers.checks.timelimit), and the run still ends with a scorecard and a verdict.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from verifiers.admit import intake
from verifiers.checks import AFTER_ATTACKS, BATTERY, PREPARE, RunContext, adversarial, fidelity
from verifiers.checks.attack_evidence import ChunkEvidence
from verifiers.checks.timelimit import limited
from verifiers.data import EvalSet
from verifiers.device import describe, resolve_device
from verifiers.errors import Cancelled
from verifiers.plan import ATTACK_SPAN, FINISH_SPAN, PREPARE_SPAN
from verifiers.scorecard import (
    SCHEMA_VERSION,
    CheckResult,
    flat_metrics,
    git_revision,
    hardware,
    tool_version,
)
from verifiers.standards import Standard, evaluate
from verifiers.units import InputMapping

log = logging.getLogger(__name__)

# progress(fraction in [0, 1], stage name); raise Cancelled from it to stop the run.
Progress = Callable[[float, str], None]



def _no_progress(_fraction: float, _stage: str) -> None:
    return None


def certify(model_bytes: bytes, eval_set: EvalSet, standard: Standard, *, seed: int = 0,
            input_range: tuple[float | None, float | None] = (None, None),
            progress: Progress = _no_progress, device: str | None = None,
            batch_size: int = 256, ood_x: np.ndarray | None = None,
            mapping: InputMapping | None = None) -> dict[str, Any]:
    """Run the battery in this process and return the scorecard (a JSON-ready dict).

    ``ood_x``: optional out-of-distribution inputs of the user's, an extra OOD suite.
    ``mapping``: how the model's input units map to the standard's (verifiers.units); the
    evaluation and OOD sets are in the model's units.
    """
    started = time.time()
    ctx = prepare(model_bytes, eval_set, standard, seed=seed, input_range=input_range,
                  progress=progress, device=device, batch_size=batch_size, ood_x=ood_x,
                  mapping=mapping, started=started)
    lo_p, hi_p = ATTACK_SPAN
    ctx.progress = lambda f: progress(lo_p + (hi_p - lo_p) * f, adversarial.NAME)
    chunks = adversarial.attack_all_chunks(ctx)
    return finish(ctx, chunks, started=started, progress=progress)


def _context(model_bytes: bytes, eval_set: EvalSet, standard: Standard, seed: int,
             input_range: tuple[float | None, float | None], device: str | None,
             batch_size: int, ood_x: np.ndarray | None,
             mapping: InputMapping | None, started: float | None) -> RunContext:
    model, eval_set, domain, ood_x = intake(model_bytes, eval_set, standard, input_range,
                                            ood_x, mapping)
    limit = standard.time_limit_s
    deadline = None if limit is None else (started or time.time()) + limit
    return RunContext(model=model, eval_set=eval_set, standard=standard, domain=domain,
                      device=resolve_device(device), seed=seed, batch_size=batch_size, ood_x=ood_x,
                      mapping=mapping, deadline=deadline)


def prepare(model_bytes: bytes, eval_set: EvalSet, standard: Standard, *, seed: int = 0,
            input_range: tuple[float | None, float | None] = (None, None),
            progress: Progress = _no_progress, device: str | None = None,
            batch_size: int = 256, ood_x: np.ndarray | None = None,
            mapping: InputMapping | None = None, started: float | None = None) -> RunContext:
    """Intake, then the clean and fidelity checks: a context ready for the attacks.
    ``started``: when the job started (epoch seconds, default now), for its time limit."""
    progress(0.0, "intake")
    ctx = _context(model_bytes, eval_set, standard, seed, input_range, device, batch_size,
                   ood_x, mapping, started)
    _run_checks(ctx, PREPARE, PREPARE_SPAN, progress)
    return ctx


def save_prepared(ctx: RunContext) -> bytes:
    """What :func:`restore` needs from :func:`prepare`, as JSON bytes."""
    return json.dumps({
        "checks": {name: ctx.results[name].as_dict() for name in (c.name for c in PREPARE)},
        # None: the clean check did not finish (time limit); nothing after it runs.
        "correct": None if ctx.correct is None else np.flatnonzero(ctx.correct).tolist(),
        "white_box_reason": ctx.white_box_reason,
    }).encode()


def restore(prepared: bytes, model_bytes: bytes, eval_set: EvalSet, standard: Standard, *,
            seed: int = 0, input_range: tuple[float | None, float | None] = (None, None),
            device: str | None = None, batch_size: int = 256,
            ood_x: np.ndarray | None = None, mapping: InputMapping | None = None,
            started: float | None = None) -> RunContext:
    """The context :func:`prepare` returned, rebuilt in another process without re-running
    the clean and fidelity checks (intake runs again: the model bytes are still untrusted)."""
    saved = json.loads(prepared)
    ctx = _context(model_bytes, eval_set, standard, seed, input_range, device, batch_size,
                   ood_x, mapping, started)
    for name, result in saved["checks"].items():
        ctx.results[name] = CheckResult(name, **result)
    if saved["correct"] is not None:
        ctx.correct = np.zeros(len(eval_set), dtype=bool)
        ctx.correct[np.asarray(saved["correct"], dtype=np.int64)] = True
    fidelity.restore_module(ctx, saved["white_box_reason"])
    return ctx


def finish(ctx: RunContext, chunks: list[ChunkEvidence], *, started: float,
           progress: Progress = _no_progress) -> dict[str, Any]:
    """The adversarial summary over every chunk, the remaining checks, the scorecard."""
    lo_p, hi_p = FINISH_SPAN
    progress(lo_p, adversarial.NAME)
    ctx.results[adversarial.NAME] = limited(ctx, adversarial.NAME,
                                            lambda: adversarial.summarise(ctx, chunks))
    _run_checks(ctx, AFTER_ATTACKS, (lo_p + 0.02, hi_p), progress)
    progress(0.98, "verdict")
    card = _scorecard(ctx, started)
    progress(1.0, "done")
    return card


def _run_checks(ctx: RunContext, checks: tuple[Any, ...], span: tuple[float, float],
                progress: Progress) -> None:
    width = (span[1] - span[0]) / len(checks)
    for i, check in enumerate(checks):
        base = span[0] + i * width
        progress(base, check.name)
        ctx.progress = lambda f, base=base, name=check.name: progress(base + width * f, name)
        log.info("running check %s", check.name)
        ctx.results[check.name] = limited(ctx, check.name, lambda check=check: check.run(ctx))


def _scorecard(ctx: RunContext, started: float) -> dict[str, Any]:
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
        "robustbench": _robustbench_fields(checks, standard),
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
