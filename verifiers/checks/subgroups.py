"""Per-group clean and attacked robust accuracy, and the worst group (DESIGN: ``groups``).

Groups come from the evaluation set's optional ``group`` array; without one every metric is
absent and criteria on them are INCONCLUSIVE with "the evaluation set has no group array".
Robust accuracy per group reads the adversarial check's per-sample evidence
(``attacked_robust@<eps>``, primary threat model) and inherits its standing: an upper bound,
and not "ok" evidence when the adversarial check (after the sanity checks) is not.

Groups smaller than the standard's ``min_group_samples`` are reported and named
(``details.excluded``) but left out of the worst and ratio figures, which then cannot PASS a
criterion (``details.partial``); a worst figure over fewer groups can only over-state the
worst over all, so it is an upper bound and a miss still FAILs.

Every fraction comes with its counts (``details.counts``: ``[k, n]`` per group) so a
standard's ``confidence`` can judge it with Clopper-Pearson bounds (verifiers.groups).
The per-class breakdown (check ``classes``) is the same computation over labels.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from verifiers.catalogue import subgroups as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.groups import breakdown
from verifiers.groups.confidence import ratio
from verifiers.scorecard import CheckResult

NAME = "subgroups"
NO_GROUPS = "the evaluation set has no group array"
READS = ("correct", "attacked_robust", "attack_trust")


def run(ctx: RunContext) -> CheckResult:
    data = ctx.eval_set
    if data.group is None:
        return CheckResult(NAME, metrics={}, details={
            "not_obtained": {"*": NO_GROUPS},
            "note": "add an integer 'group' array (and optionally 'group_names') to the npz"})
    labels = {gid: data.group_label(gid) for gid in np.unique(data.group).tolist()}
    return measure(ctx, NAME, data.group, labels, unit="group", units="groups", per="group")


def measure(ctx: RunContext, name: str, ids: np.ndarray, labels: dict[int, str], *,
            unit: str, units: str, per: str) -> CheckResult:
    """Per-group metrics of one grouping (groups, or classes) as a CheckResult of ``name``."""
    t0 = time.perf_counter()
    assert ctx.correct is not None, "the clean check runs first"
    std = ctx.standard
    outcomes: dict[str, np.ndarray] = {"accuracy": ctx.correct}
    not_obtained: dict[str, str] = {}
    partial: dict[str, str] = {}
    adv = ctx.results.get("adversarial")
    for eps in std.eps:
        robust = ctx.per_sample.get(f"attacked_robust@{eps.label}")
        if robust is None:
            why = ("the adversarial check did not run" if adv is None else
                   f"no attack could run at eps {eps.label}: "
                   f"{adv.reason or 'see the adversarial check'}")
            not_obtained[f"*robust_accuracy@{eps.label}"] = why
        else:
            outcomes[f"robust_accuracy@{eps.label}"] = robust
    if adv is not None and adv.status != "ok":
        partial["*robust_accuracy@*"] = (f"check 'adversarial' {adv.status}: {adv.reason}")
    upper = ["worst.accuracy"]
    if adv is not None and adv.details.get("upper_bounds"):
        upper.append("*robust_accuracy@*")

    groups = breakdown(ids, labels, outcomes)
    minimum = std.min_group_samples
    judged = [g for g in groups if g.n >= minimum]
    excluded = [g for g in groups if g.n < minimum]
    metrics: dict[str, Any] = {f"n_{units}": len(groups), "n_excluded": len(excluded)}
    counts: dict[str, list[list[int]]] = {}
    table = []
    for g in groups:
        row: dict[str, Any] = {unit: g.label, "n_samples": g.n, "excluded": g.n < minimum}
        metrics[f"{per}.{g.label}.n_samples"] = g.n
        for outcome in outcomes:
            key = f"{per}.{g.label}.{outcome}"
            metrics[key] = g.fraction(outcome)
            counts[key] = [[g.k[outcome], g.n]]
            row[outcome] = g.fraction(outcome)
        table.append(row)
    if judged:
        for outcome in outcomes:
            worst = min(judged, key=lambda g, o=outcome: (g.fraction(o), g.label))
            metrics[f"worst.{outcome}"] = worst.fraction(outcome)
            counts[f"worst.{outcome}"] = [[g.k[outcome], g.n] for g in judged]
        metrics["best.accuracy"] = max(g.fraction("accuracy") for g in judged)
        if name == NAME:
            if len(judged) >= 2:
                metrics["accuracy_ratio"] = ratio([[g.k["accuracy"], g.n] for g in judged])
                counts["accuracy_ratio"] = counts["worst.accuracy"]
            else:
                not_obtained["accuracy_ratio"] = (f"a ratio needs two {unit}s with at least "
                                                  f"{minimum} samples; there is one")
    else:
        why = f"every {unit} has fewer than {minimum} samples (min_group_samples)"
        not_obtained.update({"worst.*": why, "best.*": why, "accuracy_ratio": why})
    if excluded and judged:
        names = ", ".join(f"{g.label} ({g.n})" for g in excluded)
        why = (f"{len(excluded)} {unit}(s) with fewer than {minimum} samples "
               f"(min_group_samples) are left out: {names}")
        partial.update({"worst.*": why, "accuracy_ratio": why})
    details: dict[str, Any] = {
        "per_" + unit: table,
        "worst": {o: min(judged, key=lambda g, o=o: (g.fraction(o), g.label)).label
                  for o in outcomes} if judged else {},
        "excluded": [{unit: g.label, "n_samples": g.n} for g in excluded],
        "min_group_samples": minimum,
        "counts": counts,
        "upper_bounds": upper,
        "eps_from": "primary threat model",
    }
    if not_obtained:
        details["not_obtained"] = not_obtained
    if partial:
        details["partial"] = partial
    return CheckResult(name, metrics=metrics, details=details,
                       seconds=time.perf_counter() - t0)


CHECK = register(Check(NAME, run, declared.SUBGROUPS, reads=READS))
