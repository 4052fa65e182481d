"""Fuzz the intake at scale: mutated models, evaluation sets, standards, and HTTP requests.

    .venv/bin/python bench/intake_fuzz.py --cases 10000 --workers 2            # ONNX models
    .venv/bin/python bench/intake_fuzz.py --kind npz --cases 2000              # evaluation sets
    .venv/bin/python bench/intake_fuzz.py --kind yaml --cases 2000             # standards
    .venv/bin/python bench/intake_fuzz.py --kind http --cases 1000             # the live API

Models, npz and YAML cases run in child processes (verifiers.model.fuzz.harness); HTTP cases
go to a real server (``robustgate serve --workers 0``, embedded default) on loopback.

Prints counts by outcome: accepted (by batch status), refused (by reason class), and the
failures the intake must never produce: error (an exception other than the library's own
escaped; for HTTP: a 5xx, a non-JSON error, no answer), crashed (the child or the server
died), timeout, and costly: accepted, but the case cost more than ``--cost-gb`` (npz/YAML:
peak traced memory of the case; HTTP: the server's peak RSS). Failing inputs are written to
--save-dir for reproduction.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
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


def print_counts(counts: collections.Counter, example: dict, statuses: tuple[str, ...]) -> None:
    by_status: collections.Counter[str] = collections.Counter()
    for (status, _), n in counts.items():
        by_status[status] += n
    for status in statuses:
        print(f"{status:>9}: {by_status[status]}")
        for (s, reason), n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if s == status:
                text = " ".join(example[(s, reason)].split())[:90]
                print(f"{'':>12}{reason:<26} {n:>6}   e.g. {text}")


FAILING = ("error", "crashed", "timeout", "costly")


def fuzz_models(args: argparse.Namespace) -> int:
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
    print_counts(counts, example, ("accepted", "refused", "error", "crashed", "timeout"))
    if failures:
        args.save_dir.mkdir(parents=True, exist_ok=True)
        for f in failures:
            case = by_index[f.index]
            path = args.save_dir / f"case{f.index}_{f.status}.onnx"
            path.write_bytes(case.data)
            print(f"FAIL {f.status} {f.reason}: {case.seed_name} {case.mutations} -> {path}"
                  f"\n     {f.message[:200]}")
    return 1 if failures else 0


def fuzz_files(args: argparse.Namespace) -> int:
    """npz evaluation sets or YAML standards, each case in a child process."""
    from bench import fuzz_inputs

    # Read by the spawned children when they import bench.fuzz_inputs.
    os.environ[fuzz_inputs.COST_CAP_ENV] = str(int(args.cost_gb * 1024**3))
    make = fuzz_inputs.npz_cases if args.kind == "npz" else fuzz_inputs.yaml_cases
    cases = {i: (what, data) for i, what, data in make(args.cases, seed=args.seed)}
    target = f"bench.fuzz_inputs:{args.kind}_outcome"
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    failures = []
    t0 = time.perf_counter()
    outcomes = run_isolated(((i, data) for i, (_, data) in cases.items()),
                            workers=args.workers, timeout=args.timeout,
                            memory_mb=args.memory_mb, target=target)
    for outcome in outcomes:
        key = (outcome.status, outcome.reason)
        counts[key] += 1
        example.setdefault(key, f"{cases[outcome.index][0]}: {outcome.message}")
        if outcome.status in FAILING:
            failures.append(outcome)
    seconds = time.perf_counter() - t0
    print(f"\n{len(cases)} {args.kind} cases in {seconds:.1f} s; cost cap {args.cost_gb:g} GB")
    print_counts(counts, example, ("accepted", "refused", *FAILING))
    if failures:
        args.save_dir.mkdir(parents=True, exist_ok=True)
        for f in failures:
            what, data = cases[f.index]
            path = args.save_dir / f"{args.kind}{f.index}_{f.status}.{args.kind}"
            path.write_bytes(data)
            print(f"FAIL {f.status} {f.reason}: {what} -> {path}\n     {f.message[:200]}")
    return 1 if failures else 0


def fuzz_http(args: argparse.Namespace) -> int:
    """Hostile requests against a live API; the server's peak RSS is watched per case."""
    import tempfile

    from bench.fuzz_http import http_cases, peak_rss_mb, send
    from service.serve import stop
    from tests.fixtures_service import embedded_settings, start_server

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    example: dict[tuple[str, str], str] = {}
    failures = []
    cap_mb = args.cost_gb * 1024
    with tempfile.TemporaryDirectory(prefix="rg-fuzz-http-") as tmp:
        handle = start_server(embedded_settings(Path(tmp)), workers=0)
        try:
            token = handle.token("fuzz")
            t0 = time.perf_counter()
            if True:  # one connection per case (Connection: close)
                for case in http_cases(args.cases, token, seed=args.seed):
                    status, reason, message = send(handle.url, case, args.timeout)
                    if handle.proc.poll() is not None:
                        status, reason = "crashed", f"server exit {handle.proc.returncode}"
                    elif status == "accepted" and peak_rss_mb(handle.proc.pid) > cap_mb:
                        status, reason = "costly", "accepted, costly"
                        message = f"server peak RSS {peak_rss_mb(handle.proc.pid):.0f} MB"
                    counts[(status, reason)] += 1
                    example.setdefault((status, reason), f"{case.what}: {message}")
                    if status in FAILING:
                        failures.append((case, status, reason, message))
                    if status == "crashed":
                        break
            seconds = time.perf_counter() - t0
            peak = peak_rss_mb(handle.proc.pid)
        finally:
            stop([handle.proc])
    print(f"\n{sum(counts.values())} http cases in {seconds:.1f} s; server peak RSS "
          f"{peak:.0f} MB (cap {cap_mb:.0f} MB)")
    print_counts(counts, example, ("accepted", "refused", "skipped", *FAILING))
    for case, status, reason, message in failures[:20]:
        print(f"FAIL {status} {reason}: #{case.index} {case.what} {case.method} "
              f"{case.path[:60]}\n     {message[:200]}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("model", "npz", "yaml", "http"), default="model")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space headroom "
                        "per child beyond its imports")
    parser.add_argument("--cost-gb", type=float, default=None,
                        help="accepted but costing more than this is a failure (npz/YAML: "
                             "1 GB of traced memory per case; http: 2 GB server peak RSS)")
    parser.add_argument("--no-exporters", action="store_true",
                        help="hand-built seeds only (no torch/skl2onnx exports)")
    parser.add_argument("--convert", action="store_true",
                        help="also convert accepted models to torch and measure fidelity")
    parser.add_argument("--save-dir", type=Path, default=Path("bench/intake_fuzz_failures"))
    args = parser.parse_args()
    if args.cost_gb is None:
        args.cost_gb = 2.0 if args.kind == "http" else 1.0
    if args.kind == "model":
        return fuzz_models(args)
    return fuzz_http(args) if args.kind == "http" else fuzz_files(args)


if __name__ == "__main__":
    raise SystemExit(main())
