"""CUDA out-of-memory halves the batch and retries. No GPU here: the step raises torch's own
OutOfMemoryError above a batch size, as a device with that little memory would."""

from __future__ import annotations

import pytest
import torch

from workers.oom import halving_on_oom


def test_the_batch_halves_until_the_step_fits():
    tried: list[int] = []

    def step(batch: int) -> int:
        tried.append(batch)
        if batch > 60:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch * 2

    assert halving_on_oom(step, 256) == 64
    assert tried == [256, 128, 64, 32]


def test_an_oom_at_one_sample_propagates_and_other_errors_are_not_retried():
    def never(batch: int) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        halving_on_oom(never, 8)
    calls = []

    def broken(batch: int) -> None:
        calls.append(batch)
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        halving_on_oom(broken, 8)
    assert calls == [8]
