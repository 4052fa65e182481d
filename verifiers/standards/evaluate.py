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
metric keys -> reason) says why, and that reason is shown instead of "not produced". A metric
a check obtained only in part (e.g. a worst-group figure with small groups left out) is named
in ``details.partial`` (pattern -> reason): it is judged as if its check were inconclusive.

Sampling uncertainty: a criterion with a ``confidence`` level (the standard's, or its own) on
a metric the catalogue marks as sampled is judged on an interval, not the point value: the
check reports ``details.counts`` (key -> ``[[k, n], ...]``, one pair per group) and the
interval is Clopper-Pearson (the worst of several groups: Bonferroni-simultaneous) or a
seeded bootstrap for a ratio (verifiers.groups.confidence). ``>=`` PASSes when the lower
bound clears the threshold, FAILs when the upper bound misses it, and is INCONCLUSIVE in
between; the one-sided rules above then apply to the interval's verdict.

Sample size: with fewer evaluation samples than the standard's ``min_samples`` every
criterion is INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from verifiers import catalogue
from verifiers.groups.confidence import Interval, ratio_interval, worst_interval
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
    interval: Interval | None = None

    def as_dict(self) -> dict[str, Any]:
        c = self.criterion
        out = {"metric": c.metric, "op": c.op, "threshold": c.threshold,
               "severity": c.severity, "value": self.value, "margin": self.margin,
               "result": self.result, "reason": self.reason}
        if c.confidence is not None:
            iv = self.interval
            out |= {"confidence": c.confidence,
                    "interval": None if iv is None else [iv.low, iv.high],
                    "n_samples": None if iv is None else iv.n,
                    "interval_method": None if iv is None else iv.method}
        return out


def evaluate(standard: Standard, checks: Mapping[str, Any],
             n_samples: int | None = None) -> tuple[list[CriterionResult], str, list[str]]:
    """Criteria results, the verdict and the reasons behind it.

    ``checks`` maps check name -> object with ``status`` ("ok" or not), ``reason``,
    ``metrics`` and ``details`` (e.g. verifiers.scorecard.CheckResult). ``n_samples``: the
    evaluation set's size (default: the clean check's ``n_samples``), for ``min_samples``.
    """
    results = [evaluate_criterion(c, checks) for c in standard.criteria]
    too_few = _too_few(standard, checks, n_samples)
    if too_few:
        results = [CriterionResult(r.criterion, INCONCLUSIVE, r.value, r.margin,
                                   f"{too_few} (measured: {r.reason})", r.interval)
                   for r in results]
    required = [r for r in results if r.criterion.severity == "required"]
    failed = [r for r in required if r.result == FAIL]
    unsure = [r for r in required if r.result == INCONCLUSIVE]
    if failed:
        return results, FAIL, [f"{r.criterion.metric}: {r.reason}" for r in failed]
    if unsure:
        return results, INCONCLUSIVE, [f"{r.criterion.metric}: {r.reason}" for r in unsure]
    return results, PASS, ["every required criterion passed"]


def _too_few(standard: Standard, checks: Mapping[str, Any], n_samples: int | None) -> str:
    if standard.min_samples <= 0:
        return ""
    if n_samples is None:
        clean = checks.get("clean")
        n = _number(clean.metrics.get("n_samples")) if clean is not None else None
        n_samples = None if n is None else int(n)
    if n_samples is None:
        return (f"the standard needs at least {standard.min_samples} evaluation samples "
                "(min_samples) and the sample count is unknown")
    if n_samples < standard.min_samples:
        return (f"the evaluation set has {n_samples} samples, fewer than the standard's "
                f"min_samples {standard.min_samples}")
    return ""


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
    margin = value - c.threshold if c.op in (">=", ">") else c.threshold - value
    interval: Interval | None = None
    if c.confidence is None:
        ok = COMPARATORS[c.op](value, c.threshold)
        decided: str | None = PASS if ok else FAIL
        comparison = f"{value:.6g} {c.op} {c.threshold:.6g}" + ("" if ok else " is false")
    else:
        interval, problem = _interval(c, details)
        if interval is None:
            return CriterionResult(c, INCONCLUSIVE, value, margin, (
                f"measured {value:.6g}, but the criterion asks for confidence "
                f"{c.confidence:g} and {problem}"))
        decided = _decide(c, interval)
        comparison = (f"{value:.6g} {c.op} {c.threshold:.6g} at confidence {c.confidence:g}: "
                      f"interval [{interval.low:.4g}, {interval.high:.4g}] over "
                      f"{interval.n} samples ({interval.method})")
        comparison += {PASS: "", FAIL: " is false"}.get(
            decided or "", "; the interval straddles the threshold, so the sample is too "
                           "small to decide")
    partial = _partial(c, details)
    if check.status == "ok" and partial is None:
        result = decided or INCONCLUSIVE
        return CriterionResult(c, result, value, margin, comparison, interval)
    if check.status != "ok":
        why = f"check {c.check!r} {check.status}: {check.reason}"
    else:
        why = f"metric {c.metric!r} was obtained only in part: {partial}"
    bound = _bound(c, details) if check.status in ("ok", "inconclusive") else None
    if decided == FAIL and bound is not None:
        return CriterionResult(c, FAIL, value, margin, (
            f"{comparison}; the reported value is {bound} on the true one, so the criterion "
            f"fails whatever the rest of the check's evidence ({why})"), interval)
    # Shown for people, but evidence not fully obtained never passes a criterion.
    return CriterionResult(c, INCONCLUSIVE, value, margin,
                           f"{why}; measured {comparison}, which cannot decide the criterion",
                           interval)


def _decide(c: Criterion, iv: Interval) -> str | None:
    """PASS when the whole interval meets the threshold, FAIL when none of it does."""
    meets = COMPARATORS[c.op]
    worst, best = (iv.low, iv.high) if c.op in (">=", ">") else (iv.high, iv.low)
    if meets(worst, c.threshold):
        return PASS
    if not meets(best, c.threshold):
        return FAIL
    return None


def _interval(c: Criterion, details: Mapping[str, Any]) -> tuple[Interval | None, str]:
    """The confidence interval of the criterion's metric from the check's counts."""
    assert c.confidence is not None
    try:
        sampling = catalogue.lookup(c.metric).spec.sampling
    except catalogue.UnknownMetric:
        sampling = "none"
    raw = (details.get("counts") or {}).get(c.key)
    try:
        counts = [(int(k), int(n)) for k, n in raw]
        valid = bool(counts) and all(0 <= k <= n and n > 0 for k, n in counts)
    except (TypeError, ValueError):
        valid = False
    if sampling == "none":
        return None, "the metric is not one judged on a sample"
    if not valid:
        return None, "the check reported no sample counts for it"
    if sampling == "bootstrap":
        if len(counts) < 2:
            return None, "a ratio needs two groups"
        return ratio_interval(counts, c.confidence), ""
    return worst_interval(counts, c.confidence), ""


def _partial(c: Criterion, details: Mapping[str, Any]) -> str | None:
    reasons = details.get("partial")
    pattern = _matching(reasons, c.key)
    return str(reasons[pattern]) if pattern is not None and isinstance(reasons, Mapping) \
        else None


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
