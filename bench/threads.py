"""Benchmark: one digits job in-process under each threading setting, wall and CPU seconds.

The battery interleaves torch (gradients) with onnxruntime (Square's queries, the re-check of
every claim) in one process. Two settings decide how they share the cores: torch's intra-op
threads (OMP_NUM_THREADS) and whether onnxruntime's pool busy-waits between runs
(``session.intra_op.allow_spinning``; verifiers/model/runtime.py turns it off). Each setting
runs in a fresh child process: one warm-up job, then ``--repeats`` timed jobs (the shipped
digits CNN and evaluation set, demo-digits, seeds 1..). CPU is the child's user + system time,
its helper threads included. Ratios are against the first row, measured in the same run.

    .venv/bin/python -m bench.threads             # about 2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = (  # (label, torch threads or None for torch's default, onnxruntime spinning)
    ("before: torch default threads, onnxruntime spinning", None, True),
    ("onnxruntime not spinning (the default now)", None, False),
    ("1 torch thread, onnxruntime spinning", 1, True),
    ("1 torch thread, onnxruntime not spinning", 1, False),
)


def _child(spinning: bool, repeats: int) -> None:
    if spinning:  # undo runtime.py's setting: onnxruntime's own default (spin) again
        import onnxruntime as ort

        base = ort.SessionOptions

        class Spinning(base):  # type: ignore[misc, valid-type]
            def add_session_config_entry(self, key: str, value: str) -> None:
                if key != "session.intra_op.allow_spinning":
                    super().add_session_config_entry(key, value)

        ort.SessionOptions = Spinning
    import torch

    from verifiers.data import load_eval_set
    from verifiers.pipeline import certify
    from verifiers.standards.builtin import builtin_standards

    model = (ROOT / "examples" / "digits_cnn.onnx").read_bytes()
    data = load_eval_set(ROOT / "examples" / "digits_eval.npz")
    standard = builtin_standards()["demo-digits"]
    certify(model, data, standard, seed=0)  # warm-up: imports, first sessions, allocator
    rows = []
    for seed in range(1, repeats + 1):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        certify(model, data, standard, seed=seed)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        rows.append({"wall": t1 - t0, "cpu": (r1.ru_utime + r1.ru_stime)
                     - (r0.ru_utime + r0.ru_stime)})
    print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["spin", "nospin"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child == "spin", args.repeats)
        return
    print(f"{'setting':54s} {'threads':>7s} {'wall s':>7s} {'CPU s':>7s} {'wall x':>7s} "
          f"{'CPU x':>6s}")
    first: tuple[float, float] | None = None
    for label, threads, spinning in SETTINGS:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                                 "OMP_WAIT_POLICY")}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        out = subprocess.run([sys.executable, "-m", "bench.threads", "--repeats",
                              str(args.repeats), "--child", "spin" if spinning else "nospin"],
                             cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        wall = statistics.median(r["wall"] for r in result["rows"])
        cpu = statistics.median(r["cpu"] for r in result["rows"])
        first = first or (wall, cpu)
        print(f"{label:54s} {result['threads']:7d} {wall:7.2f} {cpu:7.2f} "
              f"{wall / first[0]:7.2f} {cpu / first[1]:6.2f}")
    print("(medians of the timed jobs; x: against the first row)")


if __name__ == "__main__":
    main()
