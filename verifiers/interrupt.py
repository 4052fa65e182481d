"""Cooperative interruption: cancel and time limits reach every long loop within seconds.

A run installs a checker (:func:`watching`); every long loop (attack iterations, Square's
queries, bound optimisation, smoothing's sampling blocks, the cascade) calls
:func:`checkpoint` once per iteration. Without a checker installed :func:`checkpoint` costs one
context-variable read, so the library runs unchanged in-process and in tests.

The checker raises :class:`~verifiers.errors.Cancelled` or
:class:`~verifiers.errors.ShardTimeout`, which no check converts into a verdict: the run ends.

A call with a time budget of its own (``verify --timeout``) adds it with :func:`time_budget`:
the installed checker still runs first, then the budget's deadline raises
:class:`~verifiers.errors.OutOfTime`, which that call turns into an 'unknown' answer.

A standard's own time limit (:func:`time_limit`) raises
:class:`~verifiers.errors.TimeLimitReached` instead, which the pipeline turns into
INCONCLUSIVE checks: the job still ends with a scorecard.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from verifiers.errors import Cancelled, OutOfTime, ShardTimeout, TimeLimitReached

Checker = Callable[[], None]
_current: ContextVar[Checker | None] = ContextVar("robustgate_interrupt", default=None)


def checkpoint() -> None:
    """Raise if the running job was cancelled or ran past its time limit."""
    check = _current.get()
    if check is not None:
        check()


@contextlib.contextmanager
def watching(check: Checker | None) -> Iterator[None]:
    """Install ``check`` for the code run inside the block (this thread/context only)."""
    token = _current.set(check)
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def time_limit(deadline: float | None, reason: str) -> Iterator[None]:
    """Inside the block, :func:`checkpoint` also raises :class:`TimeLimitReached` once
    ``time.time()`` passes ``deadline`` (epoch seconds: a job's shards run in several
    processes, all counting from the job's start). The checker already installed (cancel,
    the service's hard limits) still runs first. ``deadline`` None: no limit."""
    if deadline is None:
        yield
        return
    outer = _current.get()

    def check() -> None:
        if outer is not None:
            outer()
        if time.time() > deadline:
            raise TimeLimitReached(reason)

    with watching(check):
        yield


class Interrupt:
    """A checker from a deadline (``time.monotonic()`` seconds) and a cancel flag.

    The flag may be expensive (a database read): it is polled at most every ``poll_s``
    seconds; the deadline is compared on every call.
    """

    def __init__(self, cancelled: Callable[[], bool] | None = None,
                 deadline: float | None = None, timeout_reason: str = "ran past its time limit",
                 poll_s: float = 1.0) -> None:
        self.cancelled = cancelled
        self.deadline = deadline
        self.timeout_reason = timeout_reason
        self.poll_s = poll_s
        self._polled = float("-inf")

    def __call__(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise ShardTimeout(self.timeout_reason)
        if self.cancelled is not None and now - self._polled >= self.poll_s:
            self._polled = now
            if self.cancelled():
                raise Cancelled("certification was cancelled")


class Budget:
    """A monotonic deadline with the reason to give when it passes."""

    def __init__(self, seconds: float, reason: str) -> None:
        self.deadline = time.monotonic() + max(0.0, seconds)
        self.reason = reason

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def at(self, share: float) -> float:
        """The monotonic time when ``share`` of what is left now will have passed."""
        return time.monotonic() + max(0.0, self.left()) * share

    def owns(self, exc: OutOfTime) -> bool:
        return exc.budget is self


@contextlib.contextmanager
def time_budget(seconds: float, reason: str) -> Iterator[Budget]:
    """Every :func:`checkpoint` inside the block also raises ``OutOfTime`` past the budget."""
    budget = Budget(seconds, reason)
    outer = _current.get()

    def check() -> None:
        if outer is not None:
            outer()
        if time.monotonic() > budget.deadline:
            raise OutOfTime(budget.reason, budget)

    with watching(check):
        yield budget
