"""The plan both executors run: where progress lands, and steps that start over cleanly.

The OOM tests run on the CPU: the step's progress callback raises torch's own
OutOfMemoryError part-way through the step at the larger batch, as a device with that little
memory would, and workers.oom retries the step at half the batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from verifiers import get_builtin, load_eval_set
from verifiers.checks.attack_evidence import ChunkEvidence
from verifiers.data import validate_arrays
from verifiers.plan import (
    ATTACK,
    ATTACK_SPAN,
    DONE,
    FINISH,
    FINISH_SPAN,
    PREPARE,
    attack_chunks,
    job_progress,
    shards_stage,
)
from verifiers.run_plan import CertificationPlan, JobInputs, Prepared, Step
from workers.oom import halving_on_oom

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRACTIONS = (0.0, 0.1, 0.5, 0.99, 1.0)


def _in_process(total: int) -> list[tuple[float, str]]:
    """What the in-process executor reports: every chunk in turn, its index as chunks done."""
    seen = [job_progress(PREPARE, f, "clean") for f in FRACTIONS]
    seen += [job_progress(ATTACK, f, "adversarial", done=k, total=total)
             for k in range(total) for f in FRACTIONS]
    seen += [job_progress(FINISH, f, "ood") for f in FRACTIONS]
    return [*seen, job_progress(DONE, 0.0, "")]


def _sharded(total: int) -> list[tuple[float, str]]:
    """What the Celery executor reports: each shard from the parts stored before it, then the
    count once it is stored."""
    seen = [job_progress(PREPARE, f, "clean") for f in FRACTIONS]
    for done in range(total):
        seen.append(job_progress(ATTACK, 0.0, shards_stage(done, total), done=done, total=total))
        seen += [job_progress(ATTACK, f, shards_stage(done, total), done=done, total=total)
                 for f in FRACTIONS]
    seen.append(job_progress(ATTACK, 0.0, shards_stage(total, total), done=total, total=total))
    seen += [job_progress(FINISH, f, "ood") for f in FRACTIONS]
    return [*seen, job_progress(DONE, 0.0, "")]


@pytest.mark.parametrize("total", [1, 2, 7])
@pytest.mark.parametrize("executor", [_in_process, _sharded])
def test_progress_is_monotone_over_the_steps_and_ends_at_one(executor, total):
    seen = executor(total)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions), seen
    assert fractions[0] == 0.0 and seen[-1] == (1.0, "done")
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_each_step_fills_its_own_span():
    assert job_progress(PREPARE, 1.0, "fidelity")[0] == ATTACK_SPAN[0]
    assert job_progress(ATTACK, 1.0, "x", done=2, total=3)[0] == ATTACK_SPAN[1]
    assert job_progress(ATTACK, 0.5, "x", done=1, total=4)[0] == pytest.approx(0.1 + 0.5 * 1.5 / 4)
    assert job_progress(FINISH, 0.0, "adversarial") == (FINISH_SPAN[0], "adversarial")
    assert job_progress(FINISH, 1.0, "verdict") == (FINISH_SPAN[1], "verdict")
    assert job_progress(FINISH, 7.0, "verdict")[0] == FINISH_SPAN[1]  # a fraction is clipped
    with pytest.raises(ValueError):
        job_progress(ATTACK, 0.0, "x", done=3, total=2)
    with pytest.raises(ValueError):
        job_progress("nap", 0.0, "x")


# --- steps on the digits example ---------------------------------------------------------

@pytest.fixture(scope="module")
def digits_plan() -> tuple[JobInputs, bytes]:
    """Four samples of the digits example under demo-digits, prepared once."""
    full = load_eval_set(EXAMPLES / "digits_eval.npz")
    inputs = JobInputs((EXAMPLES / "digits_cnn.onnx").read_bytes(),
                       validate_arrays(full.x[:4], full.y[:4], "digits-4"),
                       get_builtin("demo-digits"), seed=1)
    return inputs, CertificationPlan(inputs).prepare()


def test_the_steps_are_prepare_every_chunk_then_finish(digits_plan):
    inputs, prepared = digits_plan
    plan = CertificationPlan(inputs)
    assert plan.chunks == attack_chunks(4) == [(0, 4)]
    assert plan.steps() == [Step(PREPARE), Step(ATTACK, 0), Step(FINISH)]
    saved = Prepared.from_bytes(prepared)
    assert Prepared.from_bytes(saved.to_bytes()) == saved
    assert set(saved.checks) == {"clean", "fidelity"} and saved.white_box_reason == ""


def _out_of_memory_above(batch: int, stage: str, tried: list[int]):
    """A step runner for halving_on_oom: at a batch over ``batch`` the step runs until its
    first report at ``stage`` past its start, then runs out of memory."""

    def progress_for(size: int):
        tried.append(size)

        def progress(fraction: float, at: str) -> None:
            if size > batch and at == stage and fraction > 0.0:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

        return progress

    return progress_for


def _evidence(raw: bytes) -> dict:
    ev = ChunkEvidence.from_bytes(raw)
    return {"span": (ev.lo, ev.hi), "forward": ev.forward, "backward": ev.backward,
            "rejected": ev.rejected, "cut": ev.cut, "skipped": ev.skipped,
            "radii": {key: (r.robust.tolist(), list(r.broken_by), r.found_index.tolist(),
                            r.found_x.tobytes(), r.successes)
                      for key, r in ev.radii.items()}}


def test_an_attack_step_retried_at_half_the_batch_gives_the_same_evidence(digits_plan):
    inputs, prepared = digits_plan
    plan = CertificationPlan(inputs)
    tried: list[int] = []
    progress_for = _out_of_memory_above(2, "adversarial", tried)
    retried = halving_on_oom(
        lambda size: plan.attack(0, prepared, batch_size=size, progress=progress_for(size)), 4)
    assert tried == [4, 2]  # the first try ran part of the attacks, then ran out of memory
    fresh = CertificationPlan(inputs).attack(0, prepared, batch_size=2)
    planned = plan.attack(0, prepared, batch_size=4)
    assert _evidence(retried) == _evidence(fresh) == _evidence(planned)
    assert any(not all(r[0]) for r in _evidence(planned)["radii"].values())  # found something


def _card(card: dict) -> dict:
    card = json.loads(json.dumps(card))
    card.pop("timings"), card.pop("hardware")
    card["checks"] = {k: {**v, "seconds": 0} for k, v in card["checks"].items()}
    return card


def test_a_finish_step_retried_at_half_the_batch_gives_the_same_scorecard(digits_plan):
    inputs, prepared = digits_plan
    plan = CertificationPlan(inputs)
    chunks = [plan.attack(0, prepared, batch_size=4)]
    tried: list[int] = []
    # The planned batch and its first halving: the OOD and smoothing checks batch by it.
    progress_for = _out_of_memory_above(128, "ood", tried)
    retried = halving_on_oom(
        lambda size: plan.finish(prepared, chunks, batch_size=size, progress=progress_for(size)),
        256)
    assert tried == [256, 128]  # the first try got as far as the OOD check
    planned = plan.finish(prepared, chunks, batch_size=256)
    assert _card(retried) == _card(planned)
    assert np.isfinite(retried["metrics"]["adversarial.robust_accuracy@0.1"])
