"""One Marabou query, importable alone (numpy and maraboupy only) so that it can also run as a
child process that the caller kills at its deadline: Marabou's own timeout is whole seconds
and was seen to overrun by 2-3 s (parsing and preprocessing are not timed).

As a script: ``python marabou_solve.py MODEL QUERIES.npz SECONDS`` answers the queries in
order (arrays lower_k, upper_k, C_k, d_k) within SECONDS in all, one JSON line each.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings

import numpy as np


def solve(model_path: str, lower: np.ndarray, upper: np.ndarray, C: np.ndarray,
          d: np.ndarray, timeout_s: float) -> tuple[str, np.ndarray | None, str]:
    """(verdict "unsat" | "sat" | "unknown", input of a sat answer, reason of an unknown)."""
    seconds = int(math.floor(timeout_s))
    if seconds < 1:
        return "unknown", None, "Marabou: no time left"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # maraboupy warns about its missing TensorFlow parser
        try:
            from maraboupy import Marabou
        except ImportError as exc:
            return "unknown", None, f"Marabou is not available: {exc}"
    try:
        net = Marabou.read_onnx(model_path)
        ins = np.asarray(net.inputVars[0]).ravel()
        outs = np.asarray(net.outputVars[0]).ravel()
    except Exception as exc:  # the parser raises bare errors for models it cannot encode
        return "unknown", None, f"Marabou cannot read the model: {_short(exc)}"
    if len(ins) != lower.size or len(outs) != C.shape[1]:
        return "unknown", None, "Marabou sees a different input/output size"
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
        return "unknown", None, f"Marabou failed: {_short(exc)}"
    if code == "unsat":
        return "unsat", None, ""
    if code == "sat" and values:
        return "sat", np.array([values[int(v)] for v in ins]), ""
    timed_out = stats is not None and stats.hasTimedOut()
    return "unknown", None, "Marabou timed out" if timed_out else f"Marabou: {code}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def main(argv: list[str]) -> None:
    model, queries, seconds = argv[0], np.load(argv[1]), float(argv[2])
    end = time.monotonic() + seconds
    for k in range(int(queries["count"])):
        verdict, x, reason = solve(model, queries[f"lower_{k}"], queries[f"upper_{k}"],
                                   queries[f"C_{k}"], queries[f"d_{k}"], end - time.monotonic())
        print(json.dumps({"k": k, "verdict": verdict, "reason": reason,
                          "x": None if x is None else x.tolist()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
