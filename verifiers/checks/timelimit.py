"""A standard's time limit (``time_limit_s``) as the checks see it: a check the limit cuts, or
one that cannot start because time is up, is INCONCLUSIVE with the reason and no figures, so a
criterion on it can never PASS; the run goes on to a scorecard (verifiers.pipeline)."""

from __future__ import annotations

from collections.abc import Callable

from verifiers.checks.context import RunContext
from verifiers.errors import TimeLimitReached
from verifiers.interrupt import time_limit
from verifiers.scorecard import CheckResult


def cut(name: str, reason: str) -> CheckResult:
    """The result of a check the time limit stopped or never let start."""
    return CheckResult(name, status="inconclusive", reason=reason,
                       details={"time_limit": reason,
                                "not_obtained": {"*": "the check did not finish"}})


def limited(ctx: RunContext, name: str, run: Callable[[], CheckResult]) -> CheckResult:
    """``run()`` under the standard's time limit (unchanged without one)."""
    if ctx.out_of_time():
        return cut(name, ctx.time_limit_reason)
    try:
        with time_limit(ctx.deadline, ctx.time_limit_reason):
            return run()
    except TimeLimitReached as exc:
        return cut(name, str(exc))
