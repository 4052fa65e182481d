"""How a certification is cut into steps and shards, and where each step's progress lands.

The steps are prepare -> attack chunk k (one per contiguous sample chunk) -> finish
(verifiers.run_plan runs them). The chunks depend only on the number of samples (never on how
many workers there are), so the same job gives the same chunks, hence the same figures,
whether its steps run in one process or across a fleet.

:func:`job_progress` is the one place that maps a step's own progress onto the job's [0, 1]:
both executors (verifiers.pipeline, workers.tasks) report through it, so their progress cannot
drift apart. Light on purpose (no torch, no numpy): the service sizes quotas with
:func:`attack_chunks` and reads the spans to estimate the time left (verifiers.estimate).
"""

from __future__ import annotations

from collections.abc import Callable

# The steps, and the last report of a job (after its scorecard is built).
PREPARE, ATTACK, FINISH, DONE = "prepare", "attack", "finish", "done"

# Where each step's progress lands in [0, 1] (the attack span is linear in chunks done, so in
# samples: verifiers.estimate reads throughput from it). The finish step ends at the verdict
# (0.98); the job is done at 1.0.
PREPARE_SPAN = (0.0, 0.1)
ATTACK_SPAN = (0.1, 0.6)
FINISH_SPAN = (0.6, 0.98)

# Within the finish step: the adversarial summary takes its first 0.02 of the job, the
# remaining checks share the rest.
SUMMARY_SHARE = 0.02 / (FINISH_SPAN[1] - FINISH_SPAN[0])

# Samples per attack shard: the default batch size, so a shard is whole batches on a GPU and
# a small evaluation set still splits (the 300-sample demo runs as two shards).
SHARD_SAMPLES = 256

# progress(fraction, stage): of the job for an executor's sink, of one step for a step.
Report = Callable[[float, str], None]


def attack_chunks(n_samples: int, size: int = SHARD_SAMPLES) -> list[tuple[int, int]]:
    """[lo, hi) ranges tiling [0, n_samples); one empty chunk for an empty set."""
    if n_samples <= 0:
        return [(0, 0)]
    return [(lo, min(lo + size, n_samples)) for lo in range(0, n_samples, size)]


def job_progress(step: str, fraction: float, stage: str, *, done: int = 0,
                 total: int = 1) -> tuple[float, str]:
    """The job's (fraction, stage) for ``fraction`` of ``step`` done, at ``stage``.

    For an attack chunk, ``done`` is the chunks finished before it (in process: its index;
    sharded: the parts already stored) out of ``total``, so the attack span fills linearly in
    chunks. ``DONE`` is the end of the job, whatever the fraction.
    """
    f = min(max(fraction, 0.0), 1.0)
    if step == PREPARE:
        return _within(PREPARE_SPAN, f), stage
    if step == ATTACK:
        if total < 1 or not 0 <= done <= total:
            raise ValueError(f"{done} of {total} chunks done is not a position in the attacks")
        return _within(ATTACK_SPAN, min((done + f) / total, 1.0)), stage
    if step == FINISH:
        return _within(FINISH_SPAN, f), stage
    if step == DONE:
        return 1.0, "done"
    raise ValueError(f"unknown step {step!r}")


def shards_stage(done: int, total: int) -> str:
    """A sharded job's stage during the attacks (a service user sees shards, not checks)."""
    return f"attacks {done}/{total} shards"


def step_reporter(report: Report, step: str, *, done: int = 0, total: int = 1,
                  stage: str | None = None) -> Report:
    """A step's progress callback that reports the job's position to ``report``; ``stage``,
    when given, replaces the step's own stage names."""

    def step_progress(fraction: float, step_stage: str) -> None:
        report(*job_progress(step, fraction, step_stage if stage is None else stage,
                             done=done, total=total))

    return step_progress


def _within(span: tuple[float, float], fraction: float) -> float:
    lo, hi = span
    return lo + (hi - lo) * fraction
