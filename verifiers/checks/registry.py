"""The check registry: one protocol for every check of the battery, the order derived from it.

A check registers a :class:`Check`: its name, ``run(ctx) -> CheckResult``, the metrics it
declares in the catalogue, and the context facts it reads from earlier checks and writes for
later ones. The battery's order follows from those facts (a reader runs after every writer;
registration order breaks ties), and so does the split of a sharded job: what the sharded
check reads runs before its shards, the rest after. Adding a check is a module with one
``register`` call and an import in ``verifiers/checks/__init__.py``; no list to edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from verifiers.catalogue import CheckMetrics

if TYPE_CHECKING:
    from verifiers.checks.context import RunContext
    from verifiers.scorecard import CheckResult

# Facts checks leave in the context for later ones (what ``reads`` / ``writes`` name).
FACTS = {
    "correct": "ctx.correct: which samples onnxruntime classifies correctly",
    "module": "ctx.module: the trusted torch conversion (or the reason there is none)",
    "attacked_robust": "per sample, per radius: not broken by any attack",
    "adversarial_examples": "per radius: the confirmed adversarial examples",
    "attack_trust": "the adversarial check's status after the gradient-masking checks",
    "certified": "per sample, per radius: proven robust by the bound engine",
}


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[RunContext], CheckResult]
    metrics: CheckMetrics
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    # Runs per sample chunk across workers (prepare -> shards -> finish); one check at most.
    sharded: bool = False

    def __post_init__(self) -> None:
        if self.metrics.check != self.name:
            raise ValueError(f"check {self.name!r} declares the metrics of "
                             f"{self.metrics.check!r}")
        unknown = [f for f in (*self.reads, *self.writes) if f not in FACTS]
        if unknown:
            raise ValueError(f"check {self.name!r} names unknown context facts {unknown}; "
                             f"known: {sorted(FACTS)}")


_REGISTRY: dict[str, Check] = {}


def register(check: Check) -> Check:
    if check.name in _REGISTRY:
        raise ValueError(f"check {check.name!r} is registered twice")
    if check.sharded and any(c.sharded for c in _REGISTRY.values()):
        raise ValueError("only one check can be sharded")
    _REGISTRY[check.name] = check
    return check


def battery() -> tuple[Check, ...]:
    """Every registered check, each after the checks whose facts it reads."""
    pending = list(_REGISTRY.values())
    order: list[Check] = []
    while pending:
        ready = next((c for c in pending if not _waits_for(c, pending)), None)
        if ready is None:
            names = ", ".join(c.name for c in pending)
            raise ValueError(f"checks {names} read each other's facts in a cycle")
        order.append(ready)
        pending.remove(ready)
    return tuple(order)


def _waits_for(check: Check, pending: list[Check]) -> bool:
    return any(o is not check and set(o.writes) & set(check.reads) for o in pending)


def split(checks: tuple[Check, ...]) -> tuple[tuple[Check, ...], Check | None, tuple[Check, ...]]:
    """(run before the shards, the sharded check, run after it): before holds exactly the
    checks whose facts the sharded check needs, directly or through another check."""
    sharded = next((c for c in checks if c.sharded), None)
    if sharded is None:
        return checks, None, ()
    needed: set[str] = set()
    wanted = set(sharded.reads)
    for check in reversed(checks[:checks.index(sharded)]):
        if set(check.writes) & wanted:
            needed.add(check.name)
            wanted |= set(check.reads)
    before = tuple(c for c in checks if c.name in needed)
    after = tuple(c for c in checks if c.name not in needed and c is not sharded)
    return before, sharded, after
