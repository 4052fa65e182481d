"""The verdict: criteria evaluated on the checks' results, PASS only on evidence obtained.

PASS only if every required criterion passed; FAIL if any required criterion failed;
INCONCLUSIVE otherwise, with the reasons. A criterion on a check that is not "ok" is never
PASS. It can still FAIL on one-sided evidence: a check may declare in its details that some
metrics are bounds on the true value, as fnmatch patterns over its metric keys:

- ``upper_bounds``: the true value is at most the reported one (attacked robust accuracy:
  every counted example was confirmed on onnxruntime, so stronger attacks can only lower it).
  A ``>=``/``>`` criterion the reported value already misses fails whatever else went wrong.
- ``lower_bounds``: the true value is at least the reported one (certified accuracy). A
  ``<=``/``<`` criterion the reported value already misses fails.

A metric a check could not obtain is absent; ``details.not_obtained`` (fnmatch pattern over
metric keys -> reason) says why, and that reason is shown instead of "not produced".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from verifiers.standards.spec import COMPARATORS, Criterion, Standard

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
UPPER, LOWER = "upper_bounds", "lower_bounds"


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    result: str  # PASS / FAIL / INCONCLUSIVE
    value: float | None
    margin: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        c = self.criterion
        return {"metric": c.metric, "op": c.op, "threshold": c.threshold,
                "severity": c.severity, "value": self.value, "margin": self.margin,
                "result": self.result, "reason": self.reason}


def evaluate(standard: Standard,
             checks: Mapping[str, Any]) -> tuple[list[CriterionResult], str, list[str]]:
    """Criteria results, the verdict and the reasons behind it.

    ``checks`` maps check name -> object with ``status`` ("ok" or not), ``reason``,
    ``metrics`` and ``details`` (e.g. verifiers.scorecard.CheckResult).
    """
    results = [evaluate_criterion(c, checks) for c in standard.criteria]
    required = [r for r in results if r.criterion.severity == "required"]
    failed = [r for r in required if r.result == FAIL]
    unsure = [r for r in required if r.result == INCONCLUSIVE]
    if failed:
        return results, FAIL, [f"{r.criterion.metric}: {r.reason}" for r in failed]
    if unsure:
        return results, INCONCLUSIVE, [f"{r.criterion.metric}: {r.reason}" for r in unsure]
    return results, PASS, ["every required criterion passed"]


def evaluate_criterion(c: Criterion, checks: Mapping[str, Any]) -> CriterionResult:
    check = checks.get(c.check)
    if check is None:
        return CriterionResult(c, INCONCLUSIVE, None, None, f"check {c.check!r} was not run")
    details = getattr(check, "details", None) or {}
    value = _number(check.metrics.get(c.key))
    if value is None:
        missing = _not_obtained(c, details)
        if check.status != "ok":
            missing = f"check {c.check!r} {check.status}: {check.reason}; {missing}"
        return CriterionResult(c, INCONCLUSIVE, None, None, missing)
    ok = COMPARATORS[c.op](value, c.threshold)
    margin = value - c.threshold if c.op in (">=", ">") else c.threshold - value
    comparison = f"{value:.6g} {c.op} {c.threshold:.6g}" + ("" if ok else " is false")
    if check.status == "ok":
        return CriterionResult(c, PASS if ok else FAIL, value, margin, comparison)
    why = f"check {c.check!r} {check.status}: {check.reason}"
    bound = _bound(c, details) if check.status == "inconclusive" else None
    if not ok and bound is not None:
        return CriterionResult(c, FAIL, value, margin, (
            f"{comparison}; the reported value is {bound} on the true one, so the criterion "
            f"fails whatever the rest of the check's evidence ({why})"))
    # Shown for people, but a check that is not "ok" never passes a criterion.
    return CriterionResult(c, INCONCLUSIVE, value, margin,
                           f"{why}; measured {comparison}, which cannot decide the criterion")


def _bound(c: Criterion, details: Mapping[str, Any]) -> str | None:
    """How the reported value bounds the true one, when that makes a miss a sound FAIL."""
    if c.op in (">=", ">") and _matching(details.get(UPPER), c.key):
        return "an upper bound"
    if c.op in ("<=", "<") and _matching(details.get(LOWER), c.key):
        return "a lower bound"
    return None


def _not_obtained(c: Criterion, details: Mapping[str, Any]) -> str:
    reasons = details.get("not_obtained")
    pattern = _matching(reasons, c.key)
    if pattern is not None and isinstance(reasons, Mapping):
        return f"metric {c.metric!r} was not obtained: {reasons[pattern]}"
    return f"metric {c.metric!r} was not produced by this run"


def _matching(patterns: Any, key: str) -> str | None:
    """The most specific pattern (exact key first, then the longest) that matches ``key``."""
    if not patterns or isinstance(patterns, str):
        return None
    found = [p for p in patterns if isinstance(p, str) and fnmatchcase(key, p)]
    if key in found:
        return key
    return max(found, key=len, default=None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
