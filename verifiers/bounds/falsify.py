"""Look for a counterexample to a VNN-LIB region before trying to prove it.

Random points in the box (seeded) are checked on onnxruntime; then PGD on the bound engine's
own torch forward pass lowers the largest constraint value ``max_k (C y + d)_k`` (a point
violates the property when it reaches <= 0). Every candidate is re-checked on onnxruntime on
the ORIGINAL model: inside the box and meeting every output constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.vnnlib import Region
from verifiers.interrupt import checkpoint
from verifiers.model import OnnxRunner


@dataclass(frozen=True)
class FalsifyConfig:
    samples: int = 256  # uniform random points per region
    pgd_steps: int = 50
    pgd_restarts: int = 4
    seed: int = 0


@dataclass(frozen=True)
class Counterexample:
    x: np.ndarray  # flattened input
    y: np.ndarray  # onnxruntime output
    found_by: str  # "sampling" or "pgd"


def float32_inside(xs: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Clip into the box, then step float32 roundings that left it back inside by one ulp."""
    xs = np.clip(np.asarray(xs, dtype=np.float64), lower, upper).astype(np.float32)
    xs = np.where(xs < lower, np.nextafter(xs, np.float32(np.inf)), xs)
    return np.where(xs > upper, np.nextafter(xs, np.float32(-np.inf)), xs).astype(np.float32)


def outward_float32(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 box containing the float64 box (a rounded-in bound would be unsound)."""
    lo, hi = lower.astype(np.float32), upper.astype(np.float32)
    lo = np.where(lo > lower, np.nextafter(lo, np.float32(-np.inf)), lo)
    hi = np.where(hi < upper, np.nextafter(hi, np.float32(np.inf)), hi)
    return lo.astype(np.float32), hi.astype(np.float32)


def confirm(runner: OnnxRunner, region: Region, xs: np.ndarray, sample_shape: tuple[int, ...],
            found_by: str) -> Counterexample | None:
    """The first candidate (flattened rows) inside the box that onnxruntime confirms."""
    if len(xs) == 0:
        return None
    xs = float32_inside(xs, region.lower, region.upper)
    inside = np.all((xs >= region.lower) & (xs <= region.upper), axis=1)
    ys = runner.run(xs.reshape(len(xs), *sample_shape))
    for x, y, ok in zip(xs, ys, inside, strict=True):
        if ok and region.violated_by(y):
            return Counterexample(x, y, found_by)
    return None


def by_sampling(runner: OnnxRunner, region: Region, sample_shape: tuple[int, ...],
                config: FalsifyConfig, rng: np.random.Generator) -> Counterexample | None:
    center = (region.lower + region.upper) / 2
    points = region.lower + (region.upper - region.lower) * rng.random(
        (config.samples, region.lower.size))
    return confirm(runner, region, np.vstack([center, points]), sample_shape, "sampling")


def by_pgd(graph: BoundGraph, runner: OnnxRunner, region: Region, config: FalsifyConfig,
           generator: torch.Generator) -> Counterexample | None:
    if region.C.shape[0] == 0 or config.pgd_steps <= 0:
        return None
    dev, dt = graph.device, graph.dtype
    lo = torch.as_tensor(region.lower, dtype=dt, device=dev)
    hi = torch.as_tensor(region.upper, dtype=dt, device=dev)
    C = torch.as_tensor(region.C, dtype=dt, device=dev)
    d = torch.as_tensor(region.d, dtype=dt, device=dev)
    step = 2.5 * (hi - lo) / 2 / config.pgd_steps
    noise = torch.rand((config.pgd_restarts, lo.numel()), generator=generator)
    x = lo + (hi - lo) * noise.to(device=dev, dtype=dt)
    found: list[np.ndarray] = []
    for _ in range(config.pgd_steps):
        checkpoint()
        x.requires_grad_(True)
        y = graph.forward(x.reshape(len(x), *graph.input_shape)).reshape(len(x), -1)
        worst = (y @ C.T + d).max(dim=1).values
        (grad,) = torch.autograd.grad(worst.sum(), x)
        with torch.no_grad():
            hits = worst <= 0
            if hits.any():
                found.append(x[hits].detach().cpu().numpy())
                result = confirm(runner, region, np.concatenate(found), graph.input_shape,
                                 "pgd")
                if result is not None:
                    return result
                found.clear()
            x = torch.minimum(torch.maximum(x - step * grad.sign(), lo), hi)
    return confirm(runner, region, x.detach().cpu().numpy(), graph.input_shape, "pgd")
