"""Benchmark of the bound engine: certified count and time per sample, IBP / CROWN / alpha-CROWN.

Models: 784-256xL-10 ReLU MLPs (L = 2, 4, 6) briefly trained on the bundled digits upsampled
to 28x28, and a CIFAR-shaped (3x32x32) conv net briefly trained on the digits upsampled and
repeated over three channels. Each model goes through the TorchScript ONNX exporter and
``certify_samples`` (the battery's API), on the samples the model classifies correctly.

    python bench/bounds.py                       # CPU, small size
    python bench/bounds.py --device cuda --samples 64

Times exclude building the graph (printed once per model). ``x_crown`` is each method's time
over CROWN's on the same model and eps in this run (the reference measured alongside); the
alpha-CROWN time includes the IBP and CROWN stages of its cascade. ``attacked`` counts PGD
successes (50 steps, 2 restarts, torch model): at most samples - attacked can be certified.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.digits import load_digits_split, train  # noqa: E402
from verifiers.attacks import PgdConfig, pgd_linf  # noqa: E402
from verifiers.bounds import (  # noqa: E402
    AlphaConfig,
    BoundConfig,
    Method,
    build_graph,
    certify_samples,
)
from verifiers.data import InputDomain  # noqa: E402


def mlp(depth: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(784, 256), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(256, 10))


def cifar_conv() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=2, padding=1), nn.ReLU(),   # 16x16x16
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32x8x8
        nn.Flatten(), nn.Linear(32 * 8 * 8, 100), nn.ReLU(), nn.Linear(100, 10))


def upsample(x: np.ndarray, size: int, channels: int) -> np.ndarray:
    t = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear",
                      align_corners=False).clamp(0, 1)
    return t.repeat(1, channels, 1, 1).numpy()


def to_onnx(model: nn.Module, sample_shape: tuple[int, ...]) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(2, *sample_shape),), buf,
                      input_names=["input"], output_names=["logits"], dynamo=False,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return onnx.load_model_from_string(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="brief training per model")
    parser.add_argument("--alpha-iterations", type=int, default=20)
    parser.add_argument("--alpha-intermediate", action=argparse.BooleanOptionalAction,
                        default=True, help="optimise slopes of intermediate bounds too")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--models", default="mlp2,mlp4,mlp6,conv")
    parser.add_argument("--mlp-eps", default="0.01,0.03")
    parser.add_argument("--conv-eps", default="0.01569,0.03137")  # 4/255, 8/255
    args = parser.parse_args()

    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    domain = InputDomain(0.0, 1.0)
    config = BoundConfig(alpha=AlphaConfig(iterations=args.alpha_iterations,
                                           optimize_intermediate=args.alpha_intermediate))
    print(f"device={args.device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"alpha_iterations={args.alpha_iterations} "
          f"alpha_intermediate={args.alpha_intermediate} batch_size={args.batch_size}")
    print(f"{'method':<12}{'model':<14}{'eps':>9}{'samples':>9}{'certified':>11}"
          f"{'attacked':>10}{'seconds':>10}{'s/sample':>10}{'x_crown':>9}")
    for name in args.models.split(","):
        if name.startswith("mlp"):
            model, shape, eps_list = mlp(int(name[3:])), (1, 28, 28), args.mlp_eps
            label = f"784-256x{name[3:]}"
            xt, xe = upsample(x_tr, 28, 1), upsample(x_ev, 28, 1)
        else:
            model, shape, eps_list, label = cifar_conv(), (3, 32, 32), args.conv_eps, "conv3x32x32"
            xt, xe = upsample(x_tr, 32, 3), upsample(x_ev, 32, 3)
        torch.manual_seed(0)
        train(model, xt, y_tr, epochs=args.epochs, seed=0)
        t0 = time.perf_counter()
        graph = build_graph(to_onnx(model, shape)).to(args.device)
        print(f"# {label}: graph built in {time.perf_counter() - t0:.3f} s", flush=True)
        with torch.no_grad():
            right = model(torch.from_numpy(xe)).argmax(1).numpy() == y_ev
        x, y = xe[right][:args.samples], y_ev[right][:args.samples]
        for eps in (float(e) for e in eps_list.split(",")):
            # PGD successes bound the certifiable count from above: certified <= n - attacked.
            attack = pgd_linf(model, torch.from_numpy(x), torch.from_numpy(y),
                              PgdConfig(eps=eps, steps=50, restarts=2), domain,
                              torch.Generator().manual_seed(0))
            attacked = int(attack.fooled.sum())
            rows = []
            for method in Method:
                t0 = time.perf_counter()
                result = certify_samples(graph, x, y, eps, domain, method, config=config,
                                         device=args.device, batch_size=args.batch_size)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                rows.append((method, int(result.certified.sum()), time.perf_counter() - t0))
            crown = next(sec for m, _, sec in rows if m == Method.CROWN)
            for method, certified, seconds in rows:
                print(f"{method.value:<12}{label:<14}{eps:>9.5f}{len(x):>9}{certified:>11}"
                      f"{attacked:>10}{seconds:>10.3f}{seconds / len(x):>10.4f}"
                      f"{seconds / crown:>9.2f}", flush=True)

if __name__ == "__main__":
    main()
