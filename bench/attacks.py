"""Benchmark: Robustgate's attack battery against pyautoattack's standard AutoAttack.

Same models, same points, same torch module (the onnx2pytorch conversion the service
attacks), one run. Per case it prints robust accuracy of each, the difference in
percentage points, wall time of each and the ratio, and forward+backward passes (per
sample) each spent. Goal: battery robust accuracy <= AutoAttack's + 0.3 points on every
case, at under a third of its time.

    .venv/bin/python -m bench.attacks                 # digits models, 300 points, CPU
    .venv/bin/python -m bench.attacks --preset thorough --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from examples.digits import DigitsCNN, DigitsMLP, export_onnx, load_digits_split, train
from verifiers.attacks.autoattack_std import autoattack_standard
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import LP_ATTACKS, Target, cascade
from verifiers.attacks.budget import DEFAULT_ATTACKS, PRESETS
from verifiers.attacks.recheck import recheck
from verifiers.data import InputDomain
from verifiers.model import load_model, to_torch

DOMAIN = InputDomain(0.0, 1.0)


@dataclass(frozen=True)
class Case:
    model: str
    norm: str
    eps: float


CASES = (
    Case("cnn", "linf", 0.1), Case("cnn-adv", "linf", 0.1), Case("cnn-adv", "linf", 0.2),
    Case("mlp", "linf", 0.1), Case("mlp-adv", "linf", 0.1), Case("cnn", "l2", 0.5),
    Case("cnn-adv", "l2", 0.5), Case("cnn-adv", "l2", 1.0), Case("mlp", "l2", 0.5),
    Case("mlp-adv", "l2", 1.0), Case("cnn", "l1", 1.0), Case("cnn-adv", "l1", 2.0),
)


def build_models(workdir: Path, seed: int) -> dict[str, Path]:
    x_tr, y_tr, _, _ = load_digits_split()
    recipes = {"cnn": (DigitsCNN, 0.0), "cnn-adv": (DigitsCNN, 0.1),
               "mlp": (DigitsMLP, 0.0), "mlp-adv": (DigitsMLP, 0.1)}
    paths = {}
    for name, (cls, adv_eps) in recipes.items():
        model = train(cls(), x_tr, y_tr, epochs=15, adversarial_eps=adv_eps, seed=seed)
        paths[name] = export_onnx(model, workdir / f"{name}.onnx")
    return paths


def run_battery(target: Target, x: np.ndarray, y: np.ndarray, ball: Ball, preset: str,
                batch_size: int, seed: int) -> tuple[np.ndarray, float, int]:
    """Robust mask over all points, seconds, forward+backward passes."""
    attacks = tuple(a for a in DEFAULT_ATTACKS if a in LP_ATTACKS)
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    robust = target.runner.predict(x) == y
    passes = len(x)
    alive = np.flatnonzero(robust)
    for start in range(0, len(alive), batch_size):
        idx = alive[start:start + batch_size]
        res = cascade(target, x[idx], y[idx], ball, DOMAIN, PRESETS[preset], attacks, generator)
        robust[idx[res.fooled]] = False
        passes += sum(res.forward.values()) + sum(res.backward.values())
    return robust, time.perf_counter() - t0, passes


def run_autoattack(target: Target, x: np.ndarray, y: np.ndarray, ball: Ball, batch_size: int,
                   seed: int) -> tuple[np.ndarray, float, int, int]:
    """Robust mask (re-checked on onnxruntime), seconds, passes, examples rejected."""
    assert target.module is not None
    out = autoattack_standard(target.module, x, y, ball, DOMAIN, seed, target.device,
                              batch_size)
    robust = target.runner.predict(x) == y
    confirmed = np.zeros(len(x), dtype=bool)
    claimed = out.fooled & robust
    confirmed[claimed] = recheck(target.runner, x[claimed], out.x_adv[claimed], y[claimed],
                                 ball, DOMAIN)
    robust &= ~confirmed
    return robust, out.seconds, out.forward_passes + out.backward_passes, int(
        claimed.sum() - confirmed.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard", choices=sorted(PRESETS))
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0, help="attack seed (both attacks)")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--cases", default="", help="comma-separated indices into CASES")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _, _, x_ev, y_ev = load_digits_split()
    x, y = x_ev[:args.points], y_ev[:args.points]
    cases = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else list(CASES)
    print(f"device={device} torch_threads={torch.get_num_threads()} points={len(x)} "
          f"preset={args.preset}")
    header = (f"{'model':8} {'norm':4} {'eps':>5} | {'clean':>6} {'battery':>7} {'AA':>6} "
              f"{'diff pp':>7} | {'t_bat s':>7} {'t_AA s':>7} {'ratio':>6} | "
              f"{'passes bat':>10} {'passes AA':>10} | {'rej':>3}")
    print(header)
    print("-" * len(header))
    worst_diff, worst_ratio = -np.inf, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(Path(tmp), args.train_seed)
        for case in cases:
            loaded = load_model(paths[case.model])
            module = to_torch(loaded.proto, loaded.info.output_kind, device)
            target = Target(module, loaded.runner, loaded.info.output_kind, device)
            ball = Ball(case.norm, case.eps)
            clean = float((loaded.runner.predict(x) == y).mean())
            rob_b, t_b, p_b = run_battery(target, x, y, ball, args.preset, 256, args.seed)
            rob_a, t_a, p_a, rej = run_autoattack(target, x, y, ball, 500, args.seed)
            acc_b, acc_a = float(rob_b.mean()), float(rob_a.mean())
            diff = 100 * (acc_b - acc_a)
            worst_diff, worst_ratio = max(worst_diff, diff), max(worst_ratio, t_b / t_a)
            print(f"{case.model:8} {case.norm:4} {case.eps:5.2f} | {clean:6.3f} {acc_b:7.3f} "
                  f"{acc_a:6.3f} {diff:+7.2f} | {t_b:7.2f} {t_a:7.2f} {t_a / t_b:5.1f}x | "
                  f"{p_b:10d} {p_a:10d} | {rej:3d}", flush=True)
            only_b = int((~rob_b & rob_a).sum())
            only_a = int((rob_b & ~rob_a).sum())
            print(f"{'':8} points broken only by battery: {only_b}, only by AutoAttack: "
                  f"{only_a}", flush=True)
    print(f"worst difference {worst_diff:+.2f} pp (goal <= +0.30); slowest time ratio "
          f"battery/AA = {worst_ratio:.2f} (goal < 0.33)")


if __name__ == "__main__":
    main()
