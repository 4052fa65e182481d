"""Fuzz the model intake at scale: mutated models, each in a child process.

    .venv/bin/python bench/intake_fuzz.py --cases 10000 --workers 2

Prints counts by outcome: accepted (by batch status), refused (by reason class), and the
failures the intake must never produce: error (an exception other than IntakeError escaped),
crashed (the child died: segfault/abort in C++) and timeout. Failing inputs are written to
--save-dir for reproduction.
"""

from __future__ import annotations

import argparse
import collections
import io
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifiers.model.fuzz.harness import run_isolated  # noqa: E402
from verifiers.model.fuzz.mutations import make_cases  # noqa: E402
from verifiers.model.fuzz.seeds import seed_models  # noqa: E402


def exporter_seeds() -> dict[str, bytes]:
    """Seeds from the real exporters: torch (TorchScript and dynamo) and skl2onnx."""
    import numpy as np
    import torch
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    from torch import nn

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 10), nn.Softmax(1)).eval()
    seeds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kwargs in (("torchscript13_cnn", {"dynamo": False, "opset_version": 13}),
                             ("dynamo20_cnn", {"dynamo": True, "external_data": False})):
            buf = io.BytesIO()
            torch.onnx.export(cnn, (torch.zeros(1, 1, 8, 8),), buf, input_names=["x"],
                              output_names=["p"], **kwargs)
            seeds[name] = buf.getvalue()
        rng = np.random.default_rng(0)
        x, y = rng.random((200, 16), dtype=np.float32), rng.integers(0, 3, 200)
        clf = MLPClassifier((8,), max_iter=30, random_state=0).fit(x, y)
        seeds["skl2onnx_mlp_zipmap"] = to_onnx(clf, x[:1], target_opset=17).SerializeToString()
    return seeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space headroom "
                        "per child beyond its imports")
    parser.add_argument("--no-exporters", action="store_true",
                        help="hand-built seeds only (no torch/skl2onnx exports)")
    parser.add_argument("--convert", action="store_true",
                        help="also convert accepted models to torch and measure fidelity")
    parser.add_argument("--save-dir", type=Path, default=Path("bench/intake_fuzz_failures"))
    args = parser.parse_args()

    corpus = seed_models() | ({} if args.no_exporters else exporter_seeds())
    t0 = time.perf_counter()
    cases = make_cases(corpus, args.cases, seed=args.seed)
    by_index = {c.index: c for c in cases}
    print(f"{len(cases)} cases from {len(corpus)} seeds in {time.perf_counter() - t0:.1f} s; "
          f"{args.workers} workers")
    target = ("verifiers.model.fuzz.harness:convert_outcome" if args.convert
              else "verifiers.model.fuzz.harness:intake_outcome")
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    failures = []
    t0 = time.perf_counter()
    for done, outcome in enumerate(run_isolated(((c.index, c.data) for c in cases),
                                                workers=args.workers, timeout=args.timeout,
                                                memory_mb=args.memory_mb,
                                                target=target), start=1):
        counts[(outcome.status, outcome.reason)] += 1
        example.setdefault((outcome.status, outcome.reason), outcome.message)
        if outcome.status not in ("accepted", "refused"):
            failures.append(outcome)
        if done % 1000 == 0:
            print(f"  {done} done, {time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0

    print(f"\n{len(cases)} cases in {seconds:.1f} s ({len(cases) / seconds:.1f} cases/s)")
    by_status = collections.Counter()
    for (status, _), n in counts.items():
        by_status[status] += n
    for status in ("accepted", "refused", "error", "crashed", "timeout"):
        print(f"{status:>9}: {by_status[status]}")
        for (s, reason), n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if s == status:
                text = " ".join(example[(s, reason)].split())[:90]
                print(f"{'':>12}{reason:<18} {n:>6}   e.g. {text}")
    if failures:
        args.save_dir.mkdir(parents=True, exist_ok=True)
        for f in failures:
            case = by_index[f.index]
            path = args.save_dir / f"case{f.index}_{f.status}.onnx"
            path.write_bytes(case.data)
            print(f"FAIL {f.status} {f.reason}: {case.seed_name} {case.mutations} -> {path}"
                  f"\n     {f.message[:200]}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
