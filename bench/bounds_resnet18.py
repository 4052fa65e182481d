"""Benchmark: IBP and CROWN on a torchvision ResNet-18 (random init, 10 classes, 1x3x32x32)
exported by the dynamo exporter. Prints the ops the export emits, graph build time, and per
method the wall time and the mean width of the logit bounds for a few eps.

    .venv/bin/python -m bench.bounds_resnet18 [--eps 1e-4 1e-3] [--threads 2]
"""

from __future__ import annotations

import argparse
import collections
import io
import time

import onnx
import torch

from verifiers.bounds import BoundConfig, Interval, LinearSpec, Method, bound_spec, build_graph


def export_resnet18(seed: int = 0) -> onnx.ModelProto:
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=10).eval()
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), buf, dynamo=True,
                      external_data=False, input_names=["input"], output_names=["logits"])
    return onnx.load_model_from_string(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-5, 1e-4, 1e-3])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model = export_resnet18()
    print(f"export {time.perf_counter() - t:.1f}s ops",
          dict(collections.Counter(n.op_type for n in model.graph.node)))
    t = time.perf_counter()
    graph = build_graph(model)
    print(f"build_graph {time.perf_counter() - t:.2f}s, {len(graph.nodes)} nodes")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    eye = torch.eye(10).unsqueeze(0)
    spec = LinearSpec(torch.cat([eye, -eye], 1), torch.zeros(1, 20))
    for eps in args.eps:
        box = Interval(x - eps, x + eps)
        for method in (Method.IBP, Method.CROWN):
            t = time.perf_counter()
            low = bound_spec(graph, box, spec, method, BoundConfig(cascade=False)).lower
            dt = time.perf_counter() - t
            width = (-low[:, 10:] - low[:, :10]).mean().item()
            print(f"eps={eps:g} {method.value:6s} {dt:7.2f}s mean logit width {width:.4g} "
                  f"finite={bool(torch.isfinite(low).all())}")


if __name__ == "__main__":
    main()
