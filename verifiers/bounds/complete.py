"""The complete tier: Marabou (Katz et al. 2019) on small networks, every answer re-checked.

Marabou decides "is there an input in the box whose output meets these linear constraints?"
exactly (up to its own float tolerance) or times out. A ``sat`` answer is only reported as a
counterexample after onnxruntime, on the ORIGINAL model, confirms it inside the box; models
Marabou refuses (e.g. skl2onnx casts) degrade to ``unknown`` with its reason.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint
from verifiers.model import LoadedModel, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompleteOutcome:
    status: str  # "verified" | "counterexample" | "unknown"
    counterexample: np.ndarray | None  # an input (sample shape) confirmed on onnxruntime
    reason: str
    seconds: float


@dataclass(frozen=True)
class QueryAnswer:
    verdict: str  # "unsat" | "sat" | "unknown"
    x: np.ndarray | None  # flattened input of a sat answer (not yet re-checked)
    reason: str


def marabou_query(model_path: Path, lower: np.ndarray, upper: np.ndarray, C: np.ndarray,
                  d: np.ndarray, timeout_s: float) -> QueryAnswer:
    """Is there x in [lower, upper] (flattened) with ``C f(x) + d <= 0`` row-wise?"""
    seconds = int(math.ceil(timeout_s))
    if seconds < 1:
        return QueryAnswer("unknown", None, "Marabou: no time left")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # maraboupy warns about its missing TensorFlow parser
        try:
            from maraboupy import Marabou
        except ImportError as exc:
            return QueryAnswer("unknown", None, f"Marabou is not available: {exc}")
    try:
        net = Marabou.read_onnx(str(model_path))
        ins = np.asarray(net.inputVars[0]).ravel()
        outs = np.asarray(net.outputVars[0]).ravel()
    except Exception as exc:  # the parser raises bare errors for models it cannot encode
        return QueryAnswer("unknown", None, f"Marabou cannot read the model: {_short(exc)}")
    if len(ins) != lower.size or len(outs) != C.shape[1]:
        return QueryAnswer("unknown", None, "Marabou sees a different input/output size")
    for var, lo, hi in zip(ins, lower.ravel(), upper.ravel(), strict=True):
        net.setLowerBound(int(var), float(lo))
        net.setUpperBound(int(var), float(hi))
    for row, const in zip(C, d, strict=True):
        keep = np.flatnonzero(row)
        net.addInequality([int(outs[j]) for j in keep], [float(row[j]) for j in keep],
                          float(-const), isProperty=True)
    options = Marabou.createOptions(verbosity=0, timeoutInSeconds=seconds)
    try:
        code, values, stats = net.solve(verbose=False, options=options)
    except Exception as exc:
        return QueryAnswer("unknown", None, f"Marabou failed: {_short(exc)}")
    if code == "unsat":
        return QueryAnswer("unsat", None, "")
    if code == "sat" and values:
        return QueryAnswer("sat", np.array([values[int(v)] for v in ins]), "")
    timed_out = stats is not None and stats.hasTimedOut()
    return QueryAnswer("unknown", None, "Marabou timed out" if timed_out else f"Marabou: {code}")


def complete_certify(model: bytes | LoadedModel, x: np.ndarray, y: np.ndarray, eps: float,
                     domain: InputDomain, timeout_s: float = 10.0) -> list[CompleteOutcome]:
    """Per sample: verified (no label change in the ball), a confirmed counterexample, or
    unknown with the reason. ``timeout_s`` is the budget of each sample."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(loaded.proto.SerializeToString())
        clean = loaded.runner.run(x) if len(x) else np.zeros((0, loaded.num_classes))
        for xi, yi, logits in zip(x, y, clean, strict=True):
            results.append(_one_sample(loaded, path, xi, int(yi), logits, eps, domain,
                                       timeout_s))
    return results


def _one_sample(loaded: LoadedModel, path: Path, x: np.ndarray, label: int, logits: np.ndarray,
                eps: float, domain: InputDomain, timeout_s: float) -> CompleteOutcome:
    t0 = time.perf_counter()
    lower = np.maximum(x - eps, domain.low).astype(np.float64)
    upper = np.minimum(x + eps, domain.high).astype(np.float64)
    k = loaded.num_classes
    if int(np.argmax(logits)) != label:
        return CompleteOutcome("counterexample", x.copy(), "misclassified without perturbation",
                               time.perf_counter() - t0)
    unknown = ""
    # Most dangerous rival first: a counterexample ends the sample early.
    for j in sorted((j for j in range(k) if j != label), key=lambda j: -logits[j]):
        checkpoint()
        row = np.zeros((1, k))
        row[0, label], row[0, j] = 1.0, -1.0  # y_label - y_j <= 0: class j catches up
        left = timeout_s - (time.perf_counter() - t0)
        answer = marabou_query(path, lower, upper, row, np.zeros(1), left)
        if answer.verdict == "sat":
            candidate = np.clip(answer.x.reshape(x.shape), lower, upper).astype(np.float32)
            if int(loaded.runner.predict(candidate[None])[0]) != label:
                return CompleteOutcome("counterexample", candidate, f"class {j} wins",
                                       time.perf_counter() - t0)
            unknown = f"Marabou's candidate for class {j} not confirmed on onnxruntime"
        elif answer.verdict == "unknown":
            unknown = answer.reason
        if unknown:
            break
    if unknown:
        return CompleteOutcome("unknown", None, unknown, time.perf_counter() - t0)
    return CompleteOutcome("verified", None, "", time.perf_counter() - t0)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"
