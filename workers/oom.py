"""CUDA out-of-memory: halve the batch and try the step again instead of failing the job."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


def halving_on_oom(step: Callable[[int], T], batch_size: int, what: str = "step") -> T:
    """``step(batch_size)``, retried from scratch with half the batch after each CUDA OOM,
    down to a batch of one; an OOM at one sample propagates (the model does not fit).

    The retry starts the step over, so its result is whole; with a smaller batch, attacks
    whose randomness is drawn per batch (Square) may find other points than at the planned
    size: the worker logs the size it fell back to.
    """
    size = batch_size
    while True:
        try:
            return step(size)
        except torch.cuda.OutOfMemoryError:
            if size <= 1:
                raise
            size = max(1, size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            log.warning("%s ran out of GPU memory; retrying with batch size %d", what, size)
