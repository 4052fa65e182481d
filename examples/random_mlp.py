"""Small random ReLU MLPs and properties near their decision boundary, for the complete
tier's tests and benchmark (bench/bab.py).

A property asks "is ``y[a] - y[b] > t`` on the box?" (VNN-LIB region: ``y[a] - y[b] - t <= 0``
is the violation). ``t`` is placed between the CROWN lower bound of ``y[a] - y[b]`` and the
smallest value sampling finds: below the true minimum the property holds, but CROWN alone
cannot say so; above the sampled minimum it is violated.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from verifiers.bounds import BoundGraph, LinearSpec, Method, bound_spec
from verifiers.bounds.ops import Interval
from verifiers.bounds.vnnlib import Region


def random_mlp(sizes: tuple[int, ...], seed: int) -> nn.Sequential:
    """Linear/ReLU layers of the given widths, weights drawn from ``seed`` (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(n_out, n_in, generator=gen) / n_in ** 0.5)
            lin.bias.copy_(0.1 * torch.randn(n_out, generator=gen))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def onnx_bytes(model: nn.Module, n_in: int) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(2, n_in),), buf, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"},
                                                             "logits": {0: "batch"}},
                      dynamo=False)
    return buf.getvalue()


def margin_region(n_in: int, n_out: int, centre: np.ndarray, eps: float, a: int, b: int,
                  t: float) -> Region:
    row = np.zeros((1, n_out))
    row[0, a], row[0, b] = 1.0, -1.0
    return Region(np.asarray(centre - eps, dtype=np.float64),
                  np.asarray(centre + eps, dtype=np.float64), row, np.array([-t]),
                  np.array([False]))


def crown_and_sampled(graph: BoundGraph, model: nn.Module, centre: np.ndarray, eps: float,
                      a: int, b: int, samples: int = 4096, seed: int = 0) -> tuple[float, float]:
    """(CROWN lower bound, smallest sampled value) of ``y[a] - y[b]`` on the box."""
    lo = torch.as_tensor(centre - eps, dtype=torch.float32)[None]
    hi = torch.as_tensor(centre + eps, dtype=torch.float32)[None]
    C = torch.zeros(1, 1, graph.num_outputs)
    C[0, 0, a], C[0, 0, b] = 1.0, -1.0
    lower = bound_spec(graph, Interval(lo, hi), LinearSpec(C, torch.zeros(1, 1)), Method.CROWN)
    gen = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand(samples, lo.shape[1], generator=gen)
    corners = torch.where(torch.rand(samples, lo.shape[1], generator=gen) < 0.5, lo, hi)
    with torch.no_grad():
        y = model(torch.cat([x, corners]))
    return float(lower.lower[0, 0]), float((y[:, a] - y[:, b]).min())
