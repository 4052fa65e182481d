"""Counting the engine's bound passes: instrumentation for tests and benchmarks.

``with counting() as seen:`` records, for the code run inside the block, how many passes of
each kind ran (``intermediate``: a CROWN tightening of all intermediate bounds; ``alpha``: one
alpha-CROWN optimisation). Outside a block :func:`record` costs one context-variable read.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar

_seen: ContextVar[Counter[str] | None] = ContextVar("robustgate_bound_passes", default=None)


def record(kind: str) -> None:
    seen = _seen.get()
    if seen is not None:
        seen[kind] += 1


@contextlib.contextmanager
def counting() -> Iterator[Counter[str]]:
    seen: Counter[str] = Counter()
    token = _seen.set(seen)
    try:
        yield seen
    finally:
        _seen.reset(token)
