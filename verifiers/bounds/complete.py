"""The complete tier: Marabou (Katz et al. 2019) on small networks, every answer re-checked.

Marabou decides "is there an input in the box whose output meets these linear constraints?"
exactly (up to its own float tolerance) or times out. A ``sat`` answer is only reported as a
counterexample after onnxruntime, on the ORIGINAL model, confirms it inside the box; models
Marabou refuses (e.g. skl2onnx casts) degrade to ``unknown`` with its reason.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifiers.bounds.marabou_solve import solve
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
    """Is there x in [lower, upper] (flattened) with ``C f(x) + d <= 0`` row-wise?

    In process: Marabou's whole-second timeout may overrun; see :func:`marabou_queries`."""
    return QueryAnswer(*solve(str(model_path), lower, upper, C, d, timeout_s))


Query = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # lower, upper, C, d


def marabou_queries(model_path: Path, queries: list[Query], timeout_s: float,
                    poll_s: float = 0.2) -> list[QueryAnswer]:
    """The queries in order, in a child process killed when ``timeout_s`` is spent (or when
    the interrupt checkpoint raises); queries not answered by then are unknown."""
    if not queries or timeout_s < 1:
        return [QueryAnswer("unknown", None, "Marabou: no time left") for _ in queries]
    answers = [QueryAnswer("unknown", None, "Marabou: stopped at the deadline") for _ in queries]
    end = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "queries.npz"
        arrays = {f"{name}_{k}": a for k, q in enumerate(queries)
                  for name, a in zip(("lower", "upper", "C", "d"), q, strict=True)}
        np.savez(path, count=len(queries), **arrays)
        # The child's own budget is shorter: it gives up cleanly before it is killed.
        cmd = [sys.executable, str(Path(__file__).with_name("marabou_solve.py")), str(model_path),
               str(path), f"{max(0.0, timeout_s - 0.5):.3f}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        out = ""
        try:
            while True:
                try:
                    out, _ = proc.communicate(timeout=max(0.01, min(poll_s,
                                                                   end - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    checkpoint()
                    if time.monotonic() >= end:
                        break
        finally:
            if proc.poll() is None:
                proc.kill()
                out, _ = proc.communicate()
    for line in (out or "").splitlines():
        got = json.loads(line)
        x = None if got["x"] is None else np.asarray(got["x"], dtype=np.float64)
        answers[int(got["k"])] = QueryAnswer(got["verdict"], x, got["reason"])
    return answers


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

