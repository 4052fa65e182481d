"""The in-process executor: one certification's plan (verifiers.run_plan), every step in
order in this process.

``robustgate certify`` and the library call this; workers.tasks is the other executor, the
same steps as Celery tasks. The steps hand each other the same bytes here as there (prepared
results, each chunk's evidence), so an in-process run and a sharded job give the same
scorecard, and progress goes through the one mapping both use (verifiers.plan.job_progress).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from verifiers.data import EvalSet
from verifiers.errors import Cancelled
from verifiers.plan import ATTACK, DONE, FINISH, PREPARE, job_progress, step_reporter
from verifiers.run_plan import CertificationPlan, JobInputs
from verifiers.standards import Standard
from verifiers.units import InputMapping

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
    plan = CertificationPlan(JobInputs(model_bytes, eval_set, standard, seed=seed,
                                       input_range=input_range, mapping=mapping, ood_x=ood_x,
                                       started=time.time()))
    return run_plan(plan, progress=progress, device=device, batch_size=batch_size)


def run_plan(plan: CertificationPlan, *, progress: Progress = _no_progress,
             device: str | None = None, batch_size: int = 256) -> dict[str, Any]:
    """Every step of ``plan`` in order; the scorecard."""
    prepared, chunks, card = b"", [], None
    total = len(plan.chunks)
    for step in plan.steps():
        if step.kind == PREPARE:
            prepared = plan.prepare(device=device, batch_size=batch_size,
                                    progress=step_reporter(progress, PREPARE))
        elif step.kind == ATTACK and step.chunk is not None:
            chunks.append(plan.attack(step.chunk, prepared, device=device, batch_size=batch_size,
                                      progress=step_reporter(progress, ATTACK, done=step.chunk,
                                                             total=total)))
        elif step.kind == FINISH:
            card = plan.finish(prepared, chunks, device=device, batch_size=batch_size,
                               progress=step_reporter(progress, FINISH))
    assert card is not None, "a plan ends with its finish step"
    progress(*job_progress(DONE, 1.0, "done"))
    return card


def cancel_aware(progress: Progress, cancelled: Callable[[], bool]) -> Progress:
    """Wrap a progress callback so the run stops with :class:`Cancelled` once asked to."""

    def _progress(fraction: float, stage: str) -> None:
        if cancelled():
            raise Cancelled("certification was cancelled")
        progress(fraction, stage)

    return _progress
