"""Benchmark: the attacks' host-side cost per step, before and after, in one run.

Three figures, on the device given (default: a GPU when there is one):

1. Random starts: the old scheme (one ``torch.Generator`` per row, drawn on the CPU and
   copied) against the counter-based ``RowRandom.uniform`` drawn on the device, per batch and
   per row, at digits (1x8x8) and CIFAR (3x32x32) sizes.
2. Per-iteration overhead of APGD and FAB on a model whose compute is negligible (one linear
   layer on 8x8 inputs, a radius too small to fool anything, so every row runs every step):
   the batch compacted every step (``sync_every=1``, what the code did before: a host sync per
   step) against every ``SYNC_EVERY`` steps. On a GPU the difference is the device-to-host
   syncs; on a CPU there is nothing to wait for and the two should match.
3. Forward and backward passes per sample of the default cascade on the shipped digits model,
   counted as RobustBench does: every row of every batch through the model is one pass, summed
   over attacks, divided by the number of evaluation samples.
4. Square's queries (verifiers.attacks.queries) on a torchvision ResNet-18 at 3x32x32 with 10
   classes (random init, dynamo export as bench/realsize.py): ``--square-queries`` steps of
   Square on ``--square-samples`` rows, a radius too small to fool anything so every row is
   queried every step, scored by onnxruntime (CPU) and by the torch module on the device;
   also the numpy algorithm alone (a free scoring function), the part the device cannot take.

    .venv/bin/python -m bench.attack_overhead                  # ~1 min on a CPU
    .venv/bin/python -m bench.attack_overhead --device cuda --batch 1024
    .venv/bin/python -m bench.attack_overhead --only-square    # figure 4 alone
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from verifiers.attacks import apgd as apgd_module
from verifiers.attacks import fab as fab_module
from verifiers.attacks.apgd import ApgdConfig, apgd
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import LP_ATTACKS, Target, cascade
from verifiers.attacks.budget import DEFAULT_ATTACKS, PRESETS
from verifiers.attacks.common import SYNC_EVERY
from verifiers.attacks.fab import FabConfig, fab_targeted
from verifiers.attacks.queries import score_fn
from verifiers.attacks.rowrandom import RowRandom, mix
from verifiers.attacks.square import SquareConfig, square
from verifiers.data import InputDomain, load_eval_set
from verifiers.device import resolve_device
from verifiers.model import load_model, to_torch

DOMAIN = InputDomain(0.0, 1.0)
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat


def old_uniform(rand: RowRandom, shape: tuple[int, ...], draw: int,
                device: torch.device) -> torch.Tensor:
    """The scheme replaced: one CPU generator per row, then a copy to the device."""
    out = torch.empty((len(rand.rows), *shape))
    for i, row in enumerate(rand.rows.tolist()):
        g = torch.Generator().manual_seed(mix(rand.seed, row, draw))
        out[i] = torch.rand(shape, generator=g)
    return out.to(device)


def random_starts(device: torch.device, batch: int) -> None:
    rand = RowRandom.of(7, np.arange(batch))
    print(f"random starts, batch {batch}:")
    for shape in ((1, 8, 8), (3, 32, 32)):
        old = _timed(lambda s=shape: old_uniform(rand, s, 0, device), device, 5)
        new = _timed(lambda s=shape: rand.uniform(s, 0, device), device, 5)
        print(f"  {'x'.join(map(str, shape)):8} generator per row {old * 1e3:8.2f} ms "
              f"({old / batch * 1e6:6.1f} us/row) | counter-based {new * 1e3:8.2f} ms "
              f"({new / batch * 1e6:6.2f} us/row) | {old / new:6.1f}x")


def _set_sync_every(k: int) -> None:
    # The attacks read the constant by name at call time from their own modules.
    apgd_module.SYNC_EVERY = k
    fab_module.SYNC_EVERY = k


def step_overhead(device: torch.device, batch: int, iterations: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).to(device).eval()
    x = torch.rand(batch, 1, 8, 8, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)                   # correct by construction
    target = (y + 1) % 10
    ball = Ball("linf", 1e-6)                    # nothing is fooled: every row runs every step
    rand = RowRandom.of(0, np.arange(batch))
    runs = {
        "apgd-ce": lambda: apgd(model, x, y, ball, DOMAIN, ApgdConfig(iterations), rand),
        "fab-t": lambda: fab_targeted(model, x, y, target, ball, DOMAIN,
                                      FabConfig(iterations), rand),
    }
    print(f"per-iteration time, batch {batch}, {iterations} iterations, tiny linear model:")
    for name, run in runs.items():
        per_step = {}
        for k in (1, SYNC_EVERY):
            _set_sync_every(k)
            per_step[k] = _timed(run, device, 3) / iterations
        _set_sync_every(SYNC_EVERY)
        print(f"  {name:8} sync every step {per_step[1] * 1e6:8.1f} us/iter | every "
              f"{SYNC_EVERY} steps {per_step[SYNC_EVERY] * 1e6:8.1f} us/iter | "
              f"{per_step[1] / per_step[SYNC_EVERY]:5.2f}x")


def passes_per_sample(device: torch.device, preset: str, eps: float) -> None:
    loaded = load_model((EXAMPLES / "digits_cnn.onnx").read_bytes())
    data = load_eval_set((EXAMPLES / "digits_eval.npz").read_bytes())
    module = to_torch(loaded.proto, loaded.info.output_kind, device)
    target = Target(module, loaded.runner, loaded.info.output_kind, device)
    attacks = tuple(a for a in DEFAULT_ATTACKS if a in LP_ATTACKS)
    robust = loaded.runner.predict(data.x) == data.y
    alive = np.flatnonzero(robust)
    fwd: dict[str, int] = {}
    bwd: dict[str, int] = {}
    t0 = time.perf_counter()
    for start in range(0, len(alive), 256):
        idx = alive[start:start + 256]
        res = cascade(target, data.x[idx], data.y[idx], Ball("linf", eps), DOMAIN,
                      PRESETS[preset], attacks, RowRandom.of(0, idx))
        robust[idx[res.fooled]] = False
        for a in res.forward:
            fwd[a] = fwd.get(a, 0) + res.forward[a]
            bwd[a] = bwd.get(a, 0) + res.backward[a]
    seconds = time.perf_counter() - t0
    n = len(data.x)
    print(f"passes per sample (RobustBench counting), digits CNN, {n} samples, linf {eps}, "
          f"preset {preset}: robust accuracy {robust.mean():.3f} in {seconds:.1f} s")
    for a in fwd:
        print(f"  {a:8} forward {fwd[a] / n:8.1f}  backward {bwd[a] / n:8.1f}")
    print(f"  {'total':8} forward {sum(fwd.values()) / n:8.1f}  backward "
          f"{sum(bwd.values()) / n:8.1f}")


def square_queries(device: torch.device, samples: int, queries: int) -> None:
    from bench.realsize import export_torchvision, synthetic_images

    with tempfile.TemporaryDirectory() as tmp:
        raw, _, _ = export_torchvision("resnet18-cifar", Path(tmp), seed=0)
    loaded = load_model(raw)
    kind = loaded.info.output_kind
    target = Target(to_torch(loaded.proto, kind, device), loaded.runner, kind, device)
    x = synthetic_images(samples, (3, 32, 32), seed=0)
    y = loaded.runner.predict(x)                 # the model's own labels: all correct
    ball = Ball("linf", 1e-6)                    # nothing is fooled: every row, every step
    free = np.arange(10, dtype=np.float32)       # class 9 first by a margin of 1, always
    runs = {"onnxruntime": (target.scores, y), "module": (score_fn(target, on_module=True), y),
            "numpy only": (lambda xs: np.broadcast_to(free, (len(xs), 10)), np.full(samples, 9))}
    took = {}
    for name, (scores, labels) in runs.items():
        scores(x[:8])                            # warm-up (session, cudnn autotune)
        _sync(device)
        t0 = time.perf_counter()
        out = square(scores, x, labels, ball, DOMAIN, SquareConfig(queries),
                     np.random.default_rng(0))
        _sync(device)
        took[name] = time.perf_counter() - t0
        assert out.queries == samples * queries and not out.fooled.any()
    print(f"Square, ResNet-18 3x32x32 (10 classes, random init), {samples} samples x "
          f"{queries} steps, module on {device}:")
    for name, seconds in took.items():
        print(f"  {name:12} {seconds:8.2f} s  ({seconds / queries * 1e3:8.2f} ms/step)")
    ort, mod = (took[k] - took["numpy only"] for k in ("onnxruntime", "module"))
    print(f"  onnxruntime / module: {took['onnxruntime'] / took['module']:5.2f}x whole Square, "
          f"{ort / max(mod, 1e-9):5.2f}x scoring alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--preset", default="standard", choices=sorted(PRESETS))
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-passes", action="store_true", help="only the overhead figures")
    parser.add_argument("--square-samples", type=int, default=64)
    parser.add_argument("--square-queries", type=int, default=100)
    parser.add_argument("--only-square", action="store_true", help="figure 4 alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device={device} ({name}) torch={torch.__version__} "
          f"threads={torch.get_num_threads()}")
    if not args.only_square:
        random_starts(device, args.batch)
        step_overhead(device, args.batch, args.iterations)
        if not args.skip_passes:
            passes_per_sample(device, args.preset, args.eps)
    square_queries(device, args.square_samples, args.square_queries)


if __name__ == "__main__":
    main()
