"""Benchmark: Robustgate's attack cascade against pyautoattack's standard AutoAttack.

Same model, same points, same device, same torch module (the onnx2pytorch conversion the
service attacks), one run, several attack seeds. Per case and seed it prints robust accuracy
of each, the difference in percentage points, wall seconds of each and the ratio
ours/AutoAttack, and forward and backward passes per sample of each, counted as RobustBench
does (every row of every batch through the model is one pass, summed over attacks, divided by
the number of evaluation points; ours includes its clean pass on onnxruntime, AutoAttack its
clean pass and input checks). Then the spread over seeds (min / median / max) and a verdict
per case against issue 16's target: robust accuracy no higher than AutoAttack's on every
seed, at a median wall-time ratio <= 0.10.

Timing: each run is bracketed by ``torch.cuda.synchronize`` on a CUDA device, after one
untimed warm-up (a forward and backward pass, pyautoattack imported). Ours is timed with its
onnxruntime clean pass and the onnxruntime re-check of every example it claims (as the
service runs it); AutoAttack's examples are re-checked outside its timer.

Models (``--model``):
- ``digits`` (default): the digits CNN/MLP cases below, trained here in seconds;
- ``resnet18-cifar``: torchvision's ResNet-18 (bench/realsize.py's builder, CIFAR stem by
  default) trained briefly on a synthetic learnable 10-class task of smooth 32x32 images
  (bench/synthetic_cifar.py). Its figures are costs on a synthetic task, not CIFAR-10 results;
- ``vnncomp-resnet2b`` / ``vnncomp-resnet4b``: the trained VNN-COMP 2021 CIFAR-10 ResNets, with
  images recovered from the vnnlib box centres (extract them with bench/vnncomp_fetch.py),
  attacked in pixel units through the CIFAR normalisation put in front of the graph.

    .venv/bin/python -m bench.attacks --seeds 0               # digits, 300 points, one seed
    .venv/bin/python -m bench.attacks --model resnet18-cifar --device cuda --points 300 \\
        --seeds 0,1,2                                         # issue 16's check, on a GPU
    .venv/bin/python -m bench.attacks --model resnet18-cifar --stem imagenet --points 8 \\
        --seeds 0 --train-steps 30 --train-batch 32           # a CPU smoke run
    .venv/bin/python -m bench.attacks --model vnncomp-resnet2b --vnncomp /tmp/vnncomp
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from verifiers.attacks.autoattack_std import autoattack_standard
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import LP_ATTACKS, Target, cascade
from verifiers.attacks.budget import DEFAULT_ATTACKS, PRESETS
from verifiers.attacks.recheck import recheck
from verifiers.attacks.rowrandom import RowRandom
from verifiers.data import InputDomain
from verifiers.device import resolve_device
from verifiers.model import load_model, to_torch

if TYPE_CHECKING:
    from verifiers.units import InputMapping

DOMAIN = InputDomain(0.0, 1.0)
MODELS = ("digits", "resnet18-cifar", "vnncomp-resnet2b", "vnncomp-resnet4b")
RATIO_GOAL = 0.10  # issue 16: at most a tenth of AutoAttack's wall time (median over seeds)


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


@dataclass
class Prepared:
    """One case: a model on the device, its points and the threat model."""

    name: str
    target: Target
    x: np.ndarray
    y: np.ndarray
    ball: Ball
    eps_label: str
    correct: np.ndarray     # clean prediction right, on onnxruntime
    note: str = ""

    @property
    def clean(self) -> float:
        return float(self.correct.mean())


@dataclass
class SeedRow:
    seed: int
    points_ours: int
    points_aa: int
    acc_ours: float
    acc_aa: float
    seconds_ours: float
    seconds_aa: float
    fwd_ours: float         # per evaluation point
    bwd_ours: float
    fwd_aa: float
    bwd_aa: float
    rejected_ours: int
    rejected_aa: int
    only_ours: int          # points only ours broke
    only_aa: int
    stages: dict[str, float] = field(default_factory=dict)   # ours: seconds by stage

    @property
    def diff_pp(self) -> float:
        return 100 * (self.acc_ours - self.acc_aa)

    @property
    def ratio(self) -> float:
        return self.seconds_ours / self.seconds_aa


@dataclass
class CaseResult:
    name: str
    norm: str
    eps_label: str
    points: int
    points_sha256: str
    clean: float
    rows: list[SeedRow]
    acc_ok: bool            # ours <= AutoAttack's on every seed
    ratio_ok: bool          # median ratio <= RATIO_GOAL


# ---------------------------------------------------------------- cases
def parse_eps(text: str) -> tuple[float, str]:
    """``8/255`` or ``0.5`` -> (value, label as written)."""
    return float(Fraction(text.strip())), text.strip()


def target_of(source: Path | bytes, device: torch.device,
              mapping: InputMapping | None = None) -> Target:
    """The target the service attacks: onnxruntime for the verdicts, onnx2pytorch on device."""
    loaded = load_model(source)
    if mapping is not None:
        from verifiers.model.mapped import load_mapped

        assert isinstance(source, bytes)
        loaded = load_mapped(source, loaded, mapping)
    kind = loaded.info.output_kind
    return Target(to_torch(loaded.proto, kind, device), loaded.runner, kind, device,
                  reference=loaded.reference)


def correct_on_runtime(target: Target, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return target.runner.predict(x) == y


def digits_cases(args: argparse.Namespace, device: torch.device,
                 workdir: Path) -> Iterator[Prepared]:
    from examples.digits import DigitsCNN, DigitsMLP, export_onnx, load_digits_split, train

    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    x, y = x_ev[:args.points], y_ev[:args.points]
    recipes = {"cnn": (DigitsCNN, 0.0), "cnn-adv": (DigitsCNN, 0.1),
               "mlp": (DigitsMLP, 0.0), "mlp-adv": (DigitsMLP, 0.1)}
    cases = [CASES[int(i)] for i in args.cases.split(",")] if args.cases else list(CASES)
    paths: dict[str, Path] = {}
    for case in cases:
        if case.model not in paths:
            cls, adv_eps = recipes[case.model]
            model = train(cls(), x_tr, y_tr, epochs=15, adversarial_eps=adv_eps,
                          seed=args.train_seed)
            paths[case.model] = export_onnx(model, workdir / f"{case.model}.onnx")
        target = target_of(paths[case.model], device)
        yield Prepared(f"digits-{case.model}", target, x, y, Ball(case.norm, case.eps),
                       f"{case.eps:g}", correct_on_runtime(target, x, y))


def cifar_case(args: argparse.Namespace, device: torch.device, workdir: Path) -> Prepared:
    from bench.realsize import export_net
    from bench.synthetic_cifar import SHAPE, SyntheticTask, train

    task = SyntheticTask(args.train_seed)
    train_eps, train_label = parse_eps(args.train_eps)
    trained = train(task, args.stem, args.train_steps, args.train_batch, train_eps, device,
                    args.train_seed)
    raw, kind, export_s = export_net(trained.net, SHAPE, workdir)
    x, y = task.sample(args.points, stream=10**9)   # held out: training draws other streams
    target = target_of(raw, device)
    eps, label = parse_eps(args.eps or "8/255")
    note = (f"ResNet-18 ({args.stem} stem), synthetic task (not CIFAR-10): FGSM-RS training "
            f"at linf {train_label}, {trained.steps} steps x {args.train_batch} in "
            f"{trained.seconds:.1f} s on {device}, last loss {trained.last_loss:.3f}; "
            f"export {export_s:.1f} s ({kind})")
    return Prepared(f"resnet18-cifar/{args.stem}-stem", target, x, y, Ball(args.norm, eps),
                    label, correct_on_runtime(target, x, y), note)


def vnncomp_case(args: argparse.Namespace, device: torch.device) -> Prepared:
    from bench.realsize import CIFAR_MEAN, CIFAR_STD, vnncomp_model
    from verifiers.units import InputMapping

    raw, z, y, file_eps = vnncomp_model(args.model, args.vnncomp, args.points)
    mapping = InputMapping(CIFAR_MEAN, CIFAR_STD)
    x = np.clip(mapping.to_standard(z), 0.0, 1.0).astype(np.float32)
    target = target_of(raw, device, mapping)
    eps, label = parse_eps(args.eps or file_eps)
    note = (f"trained (VNN-COMP 2021 cifar10_resnet); images = vnnlib box centres in pixels, "
            f"labels from the output constraints; the vnnlib eps is {file_eps}")
    return Prepared(args.model, target, x, y, Ball(args.norm, eps), label,
                    correct_on_runtime(target, x, y), note)


# ---------------------------------------------------------------- the two attacks
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(p: Prepared, batch: int) -> None:
    """Untimed: the first CUDA kernels, autograd and pyautoattack's import."""
    import pyautoattack  # noqa: F401  (imported inside autoattack_standard otherwise)

    assert p.target.module is not None
    xs = torch.from_numpy(p.x[:batch]).to(p.target.device).requires_grad_(True)
    p.target.module(xs).sum().backward()
    p.target.runner.predict(p.x[:8])
    _sync(p.target.device)


def run_ours(p: Prepared, preset: str, batch: int, seed: int
             ) -> tuple[np.ndarray, float, int, int, int, dict[str, float]]:
    """Robust mask, seconds, forward and backward passes, examples rejected, seconds by stage.
    Randomness keyed by point (RowRandom), as the service's adversarial check draws it."""
    attacks = tuple(a for a in DEFAULT_ATTACKS if a in LP_ATTACKS)
    device = p.target.device
    _sync(device)
    t0 = time.perf_counter()
    robust = p.target.runner.predict(p.x) == p.y
    stages = {"clean (onnxruntime)": time.perf_counter() - t0}
    fwd, bwd, rejected = len(p.x), 0, 0
    alive = np.flatnonzero(robust)
    for start in range(0, len(alive), batch):
        idx = alive[start:start + batch]
        res = cascade(p.target, p.x[idx], p.y[idx], p.ball, DOMAIN, PRESETS[preset], attacks,
                      RowRandom.of(seed, idx))
        robust[idx[res.fooled]] = False
        fwd += sum(res.forward.values())
        bwd += sum(res.backward.values())
        rejected += res.rejected
        for attack, seconds in res.seconds.items():
            stages[attack] = stages.get(attack, 0.0) + seconds
    _sync(device)
    return robust, time.perf_counter() - t0, fwd, bwd, rejected, stages


def run_autoattack(p: Prepared, batch: int, seed: int
                   ) -> tuple[np.ndarray, float, int, int, int]:
    """Robust mask (examples re-checked on onnxruntime, untimed), seconds, forward and
    backward passes, examples rejected by the re-check."""
    assert p.target.module is not None
    device = p.target.device
    _sync(device)
    t0 = time.perf_counter()
    out = autoattack_standard(p.target.module, p.x, p.y, p.ball, DOMAIN, seed, device, batch)
    _sync(device)
    seconds = time.perf_counter() - t0
    robust = p.correct.copy()   # its clean pass, done once per case (untimed)
    claimed = out.fooled & robust
    confirmed = np.zeros(len(p.x), dtype=bool)
    confirmed[claimed] = recheck(p.target.checker, p.x[claimed], out.x_adv[claimed],
                                 p.y[claimed], p.ball, DOMAIN)
    robust &= ~confirmed
    return (robust, seconds, out.forward_passes, out.backward_passes,
            int(claimed.sum() - confirmed.sum()))


def run_seed(p: Prepared, preset: str, batch: int, seed: int) -> SeedRow:
    n = len(p.x)
    rob_o, t_o, f_o, b_o, rej_o, stages = run_ours(p, preset, batch, seed)
    rob_a, t_a, f_a, b_a, rej_a = run_autoattack(p, batch, seed)
    return SeedRow(seed, len(rob_o), len(rob_a), float(rob_o.mean()), float(rob_a.mean()),
                   t_o, t_a, f_o / n, b_o / n, f_a / n, b_a / n, rej_o, rej_a,
                   int((~rob_o & rob_a).sum()), int((rob_o & ~rob_a).sum()), stages)


# ---------------------------------------------------------------- output
HEADER = (f"{'seed':>4} | {'ours':>6} {'AA':>6} {'diff pp':>7} | {'t_ours s':>8} {'t_AA s':>8} "
          f"{'ours/AA':>7} | {'fwd/pt':>7} {'bwd/pt':>7} ours | {'fwd/pt':>7} {'bwd/pt':>7} AA | "
          f"{'rej':>7} | {'only ours':>9} {'only AA':>7}")


def format_row(r: SeedRow) -> str:
    return (f"{r.seed:4d} | {r.acc_ours:6.3f} {r.acc_aa:6.3f} {r.diff_pp:+7.2f} | "
            f"{r.seconds_ours:8.2f} {r.seconds_aa:8.2f} {r.ratio:7.3f} | "
            f"{r.fwd_ours:7.1f} {r.bwd_ours:7.1f}     | {r.fwd_aa:7.1f} {r.bwd_aa:7.1f}   | "
            f"{r.rejected_ours:3d}/{r.rejected_aa:<3d} | {r.only_ours:9d} {r.only_aa:7d}")


def spread(values: list[float]) -> str:
    return (f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}")


def run_case(p: Prepared, seeds: list[int], preset: str, batch: int) -> CaseResult:
    sha = hashlib.sha256(np.ascontiguousarray(p.x).tobytes()).hexdigest()
    title = f"{p.name} {p.ball.norm} {p.eps_label}"
    print(f"\n== {title}: {len(p.x)} points (sha256 {sha[:12]}), clean accuracy "
          f"{p.clean:.3f} (onnxruntime), device {p.target.device}, preset {preset}, "
          f"batch {batch}", flush=True)
    if p.note:
        print(f"   {p.note}", flush=True)
    warm_up(p, batch)
    print(HEADER)
    print("-" * len(HEADER), flush=True)
    rows = []
    for seed in seeds:
        rows.append(run_seed(p, preset, batch, seed))
        print(format_row(rows[-1]), flush=True)
    median_ratio = statistics.median(r.ratio for r in rows)
    acc_ok = all(r.acc_ours <= r.acc_aa for r in rows)
    ratio_ok = median_ratio <= RATIO_GOAL
    print(f"spread over {len(rows)} seed(s), min / median / max: robust acc ours "
          f"{spread([r.acc_ours for r in rows])}, AA {spread([r.acc_aa for r in rows])}; "
          f"wall ratio ours/AA {spread([r.ratio for r in rows])}")
    print("ours by stage, seconds (seed " + str(rows[0].seed) + "): "
          + ", ".join(f"{k} {v:.2f}" for k, v in rows[0].stages.items()))
    worst = max(r.diff_pp for r in rows)
    print(f"verdict {title}: robust acc <= AutoAttack's on every seed: "
          f"{'yes' if acc_ok else 'no'} (worst diff {worst:+.2f} pp)")
    print(f"verdict {title}: wall ratio <= {RATIO_GOAL:.2f} (median): "
          f"{'yes' if ratio_ok else 'no'} (median {median_ratio:.3f})", flush=True)
    return CaseResult(p.name, p.ball.norm, p.eps_label, len(p.x), sha, p.clean, rows, acc_ok,
                      ratio_ok)


def prepared_cases(args: argparse.Namespace, device: torch.device,
                   workdir: Path) -> Iterator[Prepared]:
    if args.model == "digits":
        yield from digits_cases(args, device, workdir)
    elif args.model == "resnet18-cifar":
        yield cifar_case(args, device, workdir)
    else:
        yield vnncomp_case(args, device)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="digits", choices=MODELS)
    ap.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    ap.add_argument("--seeds", default="0,1,2", help="attack seeds, comma-separated; each "
                    "runs both attacks")
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--batch", type=int, default=500, help="rows per batch, both attacks")
    ap.add_argument("--norm", default="linf", choices=("linf", "l2", "l1"),
                    help="threat model of the CIFAR-size models (digits: CASES)")
    ap.add_argument("--eps", default=None, help="radius in pixel units, e.g. 8/255 (the "
                    "default for resnet18-cifar) or 0.5 with --norm l2; vnncomp: the "
                    "vnnlib files' eps by default")
    ap.add_argument("--preset", default="standard", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--cases", default="", help="digits: comma-separated indices into CASES")
    ap.add_argument("--stem", default="cifar", choices=("cifar", "imagenet"),
                    help="resnet18-cifar: ResNet-18 stem (bench/synthetic_cifar.py)")
    ap.add_argument("--train-steps", type=int, default=400, help="resnet18-cifar")
    ap.add_argument("--train-batch", type=int, default=256, help="resnet18-cifar")
    ap.add_argument("--train-eps", default="8/255", help="resnet18-cifar: FGSM-RS radius")
    ap.add_argument("--vnncomp", type=Path, default=Path("/tmp/vnncomp"))
    return ap


def main(argv: list[str] | None = None) -> list[CaseResult]:
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"device={device}{gpu} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"model={args.model} points={args.points} seeds={seeds} preset={args.preset}",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in prepared_cases(args, device, Path(tmp)):
            results.append(run_case(p, seeds, args.preset, args.batch))
    if len(results) > 1:
        print(f"\nall cases: robust acc <= AutoAttack's on every seed: "
              f"{'yes' if all(r.acc_ok for r in results) else 'no'}; wall ratio <= "
              f"{RATIO_GOAL:.2f} (median) in every case: "
              f"{'yes' if all(r.ratio_ok for r in results) else 'no'}")
    return results


if __name__ == "__main__":
    main()
