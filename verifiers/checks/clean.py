"""Clean accuracy, measured with onnxruntime on the original model."""

from __future__ import annotations

import time

from verifiers.catalogue import clean as declared
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, register
from verifiers.scorecard import CheckResult

NAME = "clean"


def run(ctx: RunContext) -> CheckResult:
    t0 = time.perf_counter()
    pred = ctx.model.runner.predict(ctx.eval_set.x, ctx.batch_size)
    ctx.correct = pred == ctx.eval_set.y
    return CheckResult(
        NAME,
        metrics={"accuracy": float(ctx.correct.mean()), "n_samples": len(ctx.eval_set),
                 "n_correct": int(ctx.correct.sum())},
        details={"runtime": "onnxruntime",
                 # [k, n] for a standard's confidence (verifiers.standards.evaluate)
                 "counts": {"accuracy": [[int(ctx.correct.sum()), len(ctx.eval_set)]]}},
        seconds=time.perf_counter() - t0)


CHECK = register(Check(NAME, run, declared.METRICS, writes=("correct",)))
