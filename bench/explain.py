"""Benchmark: what the explain check adds to a certification.

One in-process run (``verifiers.pipeline.certify``) of the demo model
(examples/digits_cnn.onnx) on its evaluation set (examples/digits_eval.npz, 300 samples)
against a standard with the ``standard`` attack preset (the built-in hyatt-lee-baseline by
default): the battery's per-check timings come from the same scorecard, so the explain
check and the rest of the battery ran on the same machine, under the same load. Prints each
check's seconds, the explain check's share and the ratio explain / rest of the battery.
Goal: the explain check adds at most 25% (ratio <= 0.25) at the default ``explain.samples``.

    .venv/bin/python -m bench.explain
    .venv/bin/python -m bench.explain --samples 128 --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from verifiers.data import load_eval_set
from verifiers.pipeline import certify
from verifiers.standards import get_builtin, parse_standard

HERE = Path(__file__).resolve().parents[1] / "examples"
GOAL = 0.25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--standard", default="hyatt-lee-baseline")
    ap.add_argument("--samples", type=int, default=None,
                    help="explain.samples (default: the standard's, 64 if it sets none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    std = get_builtin(args.standard)
    if std.budget.preset != "standard":
        print(f"note: {std.name} uses the {std.budget.preset!r} preset, not 'standard'")
    if args.samples is not None:
        doc = std.document.replace("\ncriteria:", f"\nexplain: {{samples: {args.samples}}}"
                                   "\ncriteria:", 1)
        std = parse_standard(doc)
    eval_set = load_eval_set(HERE / "digits_eval.npz")
    t0 = time.perf_counter()
    card = certify((HERE / "digits_cnn.onnx").read_bytes(), eval_set, std, seed=args.seed,
                   device="cpu")
    wall = time.perf_counter() - t0
    timings = {k: v for k, v in card["timings"].items() if k != "total_seconds"}
    explain = timings.get("explain", 0.0)
    rest = sum(v for k, v in timings.items() if k != "explain")
    print(f"standard {std.name} v{std.version}, preset {std.budget.preset}, "
          f"{len(eval_set)} samples, explain.samples {std.explain.samples}, "
          f"torch threads {args.threads}")
    for name, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<12} {seconds:8.2f} s")
    ratio = explain / rest if rest else float("inf")
    print(f"battery without explain {rest:.2f} s, explain {explain:.2f} s, wall {wall:.2f} s")
    print(f"explain / rest of battery = {ratio:.3f} (goal <= {GOAL}): "
          f"{'met' if ratio <= GOAL else 'NOT met'}")
    m = card["metrics"]
    shown = {k: round(v, 3) for k, v in m.items() if k.startswith("explain.")}
    print(f"explain metrics: {shown}")


if __name__ == "__main__":
    main()
