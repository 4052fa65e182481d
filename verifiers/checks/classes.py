"""Per-class clean and attacked robust accuracy and the worst class: the subgroups breakdown
over labels (always computed; see verifiers/checks/subgroups.py for the rules)."""

from __future__ import annotations

import numpy as np

from verifiers.catalogue import subgroups as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.checks.subgroups import READS, measure
from verifiers.scorecard import CheckResult

NAME = "classes"


def run(ctx: RunContext) -> CheckResult:
    y = ctx.eval_set.y
    labels = {int(c): str(int(c)) for c in np.unique(y)}
    result = measure(ctx, NAME, y, labels, unit="class", units="classes",
                     per="class")
    absent = sorted(set(range(ctx.model.num_classes)) - set(labels))
    if absent:
        result.details["classes_without_samples"] = absent
    return result


CHECK = register(Check(NAME, run, declared.CLASSES, reads=READS))
