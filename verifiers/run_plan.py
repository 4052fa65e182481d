"""One certification as a plan of steps with serialisable inputs and outputs.

    prepare                      -> Prepared bytes (intake, the clean and fidelity checks)
    attack chunk k, every k      -> ChunkEvidence bytes (the Lp attacks on samples [lo, hi))
    finish(prepared, chunks)     -> the scorecard, a JSON-ready dict

Two executors run the same steps: verifiers.pipeline.certify (every step in order, in this
process) and workers.tasks (one Celery task per step, each output stored as a part of the
job). The steps are the only code that drives the battery, so the two cannot drift.

Each step builds its own RunContext from the job's inputs and the earlier steps' bytes, on
the device and batch size it is given, and nothing outside a step sees that context: calling
a step again (a CUDA OOM retry with a smaller batch, a redelivered message) starts it over
cleanly. Intake runs once per plan object (its result is a pure function of the inputs,
shared read-only by the steps' contexts); a Celery task builds its own plan, so intake runs
again in every task: the stored model bytes are still untrusted there.

A standard's ``time_limit_s`` counts from the job's start (``JobInputs.started``, shared by
every step): a check it cuts, and every check after, is INCONCLUSIVE with the reason
(verifiers.checks.timelimit), and the run still ends with a scorecard and a verdict.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifiers.admit import intake
from verifiers.assemble import scorecard
from verifiers.checks import AFTER_ATTACKS, RunContext, adversarial, fidelity
from verifiers.checks import PREPARE as PREPARE_CHECKS
from verifiers.checks.attack_evidence import ChunkEvidence
from verifiers.checks.timelimit import limited
from verifiers.data import EvalSet, InputDomain
from verifiers.device import resolve_device
from verifiers.model import LoadedModel
from verifiers.plan import ATTACK, FINISH, PREPARE, SUMMARY_SHARE, Report, attack_chunks
from verifiers.scorecard import CheckResult
from verifiers.standards import Standard
from verifiers.units import InputMapping

log = logging.getLogger(__name__)

# The batch size a step runs at unless told otherwise (an OOM retry passes a smaller one).
DEFAULT_BATCH_SIZE = 256


def _no_progress(_fraction: float, _stage: str) -> None:
    return None


@dataclass(frozen=True, eq=False)  # eq=False: arrays inside; a plan's inputs are compared by id
class JobInputs:
    """Everything a job's steps read besides each other's outputs, as submitted (the
    evaluation and OOD sets in the model's units; ``mapping`` takes them to the standard's)."""

    model_bytes: bytes
    eval_set: EvalSet
    standard: Standard
    seed: int = 0
    input_range: tuple[float | None, float | None] = (None, None)
    mapping: InputMapping | None = None
    ood_x: np.ndarray | None = None
    # Epoch seconds the job started: its time limit counts from there (None: from the start
    # of each step, for a caller that runs a step alone).
    started: float | None = None


@dataclass(frozen=True)
class Step:
    """One step of the plan; ``chunk`` is the attack chunk's index (None for the others)."""

    kind: str  # verifiers.plan.PREPARE, ATTACK or FINISH
    chunk: int | None = None


@dataclass(frozen=True)
class Prepared:
    """What the prepare step leaves for the later ones: the clean and fidelity results, the
    samples classified correctly (None: the clean check did not finish; nothing after it
    runs) and why white-box analyses are off ("" when the torch module is trusted)."""

    checks: dict[str, CheckResult]
    correct: tuple[int, ...] | None
    white_box_reason: str

    @classmethod
    def of(cls, ctx: RunContext) -> Prepared:
        return cls({c.name: ctx.results[c.name] for c in PREPARE_CHECKS},
                   None if ctx.correct is None else tuple(np.flatnonzero(ctx.correct).tolist()),
                   ctx.white_box_reason)

    def to_bytes(self) -> bytes:
        return json.dumps({
            "checks": {name: result.as_dict() for name, result in self.checks.items()},
            "correct": None if self.correct is None else list(self.correct),
            "white_box_reason": self.white_box_reason,
        }).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Prepared:
        saved = json.loads(raw)
        return cls({name: CheckResult(name, **result) for name, result in saved["checks"].items()},
                   None if saved["correct"] is None else tuple(saved["correct"]),
                   saved["white_box_reason"])

    def restore_into(self, ctx: RunContext) -> None:
        """Set ``ctx`` as the prepare step left its own (the torch module converted again:
        the conversion is deterministic, verifiers.checks.fidelity.restore_module)."""
        ctx.results.update(self.checks)
        if self.correct is not None:
            ctx.correct = np.zeros(len(ctx.eval_set), dtype=bool)
            ctx.correct[np.asarray(self.correct, dtype=np.int64)] = True
        fidelity.restore_module(ctx, self.white_box_reason)


class CertificationPlan:
    """The steps of one job over ``inputs``; see the module docstring."""

    def __init__(self, inputs: JobInputs) -> None:
        self.inputs = inputs
        self.chunks: list[tuple[int, int]] = attack_chunks(len(inputs.eval_set))

    def steps(self) -> list[Step]:
        return [Step(PREPARE), *(Step(ATTACK, k) for k in range(len(self.chunks))), Step(FINISH)]

    # --- the steps ------------------------------------------------------------------------

    def prepare(self, *, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                progress: Report = _no_progress) -> bytes:
        """Intake, then the clean and fidelity checks: ``Prepared`` bytes.
        ``progress(fraction of this step, stage)``."""
        progress(0.0, "intake")
        ctx = self.context(None, device=device, batch_size=batch_size)
        _run_checks(ctx, PREPARE_CHECKS, (0.0, 1.0), progress)
        return Prepared.of(ctx).to_bytes()

    def attack(self, k: int, prepared: bytes, *, device: str | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE, progress: Report = _no_progress) -> bytes:
        """Every Lp threat model's attacks on chunk ``k``: ``ChunkEvidence`` bytes."""
        lo, hi = self.chunks[k]
        ctx = self.context(prepared, device=device, batch_size=batch_size)
        ctx.progress = lambda f: progress(f, adversarial.NAME)
        return adversarial.attack_chunk(ctx, lo, hi).to_bytes()

    def finish(self, prepared: bytes, chunks: Sequence[bytes], *, device: str | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE,
               progress: Report = _no_progress) -> dict[str, Any]:
        """The adversarial summary over every chunk's evidence (in any order), the remaining
        checks, the verdict: the scorecard."""
        ctx = self.context(prepared, device=device, batch_size=batch_size)
        evidence = [ChunkEvidence.from_bytes(raw) for raw in chunks]
        progress(0.0, adversarial.NAME)
        ctx.results[adversarial.NAME] = limited(ctx, adversarial.NAME,
                                                lambda: adversarial.summarise(ctx, evidence))
        _run_checks(ctx, AFTER_ATTACKS, (SUMMARY_SHARE, 1.0), progress)
        progress(1.0, "verdict")
        return scorecard(ctx, self.inputs.started or time.time())

    # --- contexts -------------------------------------------------------------------------

    def context(self, prepared: bytes | None, *, device: str | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE) -> RunContext:
        """A new context for one step: after intake, with the prepare step's results when
        ``prepared`` is given."""
        model, eval_set, domain, ood_x = self._admitted
        inputs, standard = self.inputs, self.inputs.standard
        limit = standard.time_limit_s
        deadline = None if limit is None else (inputs.started or time.time()) + limit
        ctx = RunContext(model=model, eval_set=eval_set, standard=standard, domain=domain,
                         device=resolve_device(device), seed=inputs.seed, batch_size=batch_size,
                         ood_x=ood_x, mapping=inputs.mapping, deadline=deadline)
        if prepared is not None:
            Prepared.from_bytes(prepared).restore_into(ctx)
        return ctx

    @functools.cached_property
    def _admitted(self) -> tuple[LoadedModel, EvalSet, InputDomain, np.ndarray | None]:
        i = self.inputs
        return intake(i.model_bytes, i.eval_set, i.standard, i.input_range, i.ood_x, i.mapping)


def _run_checks(ctx: RunContext, checks: tuple[Any, ...], span: tuple[float, float],
                progress: Report) -> None:
    """``checks`` in order on ``ctx``, sharing ``span`` of the step's progress evenly."""
    width = (span[1] - span[0]) / len(checks)
    for i, check in enumerate(checks):
        base = span[0] + i * width
        progress(base, check.name)
        ctx.progress = lambda f, base=base, name=check.name: progress(base + width * f, name)
        log.info("running check %s", check.name)
        ctx.results[check.name] = limited(ctx, check.name, lambda check=check: check.run(ctx))
