"""Look for a counterexample to VNN-LIB regions (briefly before the bounds, fully after).

Random points in the box (seeded) are checked on onnxruntime; then PGD on the bound engine's
own torch forward pass lowers the largest constraint value ``max_k (C y + d)_k`` (a point
violates the property when it reaches <= 0). Regions sharing a box are searched together: one
set of points, one PGD batch with its own starts per region. Every candidate is re-checked on
onnxruntime on the ORIGINAL model: inside the box and meeting every output constraint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.vnnlib import Region
from verifiers.interrupt import checkpoint
from verifiers.model import OnnxRunner

_CHUNK = 32  # points per onnxruntime call between two interrupt checks


@dataclass(frozen=True)
class FalsifyConfig:
    samples: int = 256  # uniform random points per box
    pgd_steps: int = 50  # the full attack, run on regions the bounds left open
    pgd_restarts: int = 4  # per region
    quick_steps: int = 10  # the quick attack, run before the bounds
    quick_restarts: int = 1
    quick_share: float = 0.1  # at most this share of the budget on the quick attack
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
    return by_sampling_group(runner, [region], sample_shape, config, rng)


def by_sampling_group(runner: OnnxRunner, regions: list[Region], sample_shape: tuple[int, ...],
                      config: FalsifyConfig, rng: np.random.Generator
                      ) -> Counterexample | None:
    """The box centre and uniform points, run once on onnxruntime for regions sharing a box."""
    box = regions[0]
    points = box.lower + (box.upper - box.lower) * rng.random((config.samples, box.lower.size))
    xs = float32_inside(np.vstack([(box.lower + box.upper) / 2, points]), box.lower, box.upper)
    inside = np.all((xs >= box.lower) & (xs <= box.upper), axis=1)
    for start in range(0, len(xs), _CHUNK):
        checkpoint()  # a large model takes seconds for a few hundred points
        part = slice(start, start + _CHUNK)
        ys = runner.run(xs[part].reshape(-1, *sample_shape))
        for x, y, ok in zip(xs[part], ys, inside[part], strict=True):
            if ok and any(r.violated_by(y) for r in regions):
                return Counterexample(x, y, "sampling")
    return None


def by_pgd(graph: BoundGraph, runner: OnnxRunner, region: Region, config: FalsifyConfig,
           generator: torch.Generator, *, steps: int | None = None,
           restarts: int | None = None, deadline: float | None = None) -> Counterexample | None:
    return by_pgd_group(graph, runner, [region], config, generator, steps=steps,
                        restarts=restarts, deadline=deadline)


def by_pgd_group(graph: BoundGraph, runner: OnnxRunner, regions: list[Region],
                 config: FalsifyConfig, generator: torch.Generator, *, steps: int | None = None,
                 restarts: int | None = None, deadline: float | None = None
                 ) -> Counterexample | None:
    """PGD for regions sharing one box, in one batch: ``restarts`` random starts per region,
    each lowering the largest constraint value of its own region. Stops early (softly) at
    ``deadline``; the interrupt checkpoint stops it hard."""
    steps = config.pgd_steps if steps is None else steps
    restarts = config.pgd_restarts if restarts is None else restarts
    regions = [r for r in regions if r.C.shape[0]]
    if not regions or steps <= 0 or restarts <= 0:
        return None
    dev, dt = graph.device, graph.dtype
    lo = torch.as_tensor(regions[0].lower, dtype=dt, device=dev)
    hi = torch.as_tensor(regions[0].upper, dtype=dt, device=dev)
    C = torch.as_tensor(np.concatenate([r.C for r in regions]), dtype=dt, device=dev)
    d = torch.as_tensor(np.concatenate([r.d for r in regions]), dtype=dt, device=dev)
    row_owner = torch.as_tensor(np.repeat(np.arange(len(regions)), [len(r.C) for r in regions]),
                                device=dev)
    owner = torch.arange(len(regions), device=dev).repeat_interleave(restarts)  # per start
    foreign = owner[:, None] != row_owner[None, :]  # rows of other regions: ignored
    step = 2.5 * (hi - lo) / 2 / steps
    noise = torch.rand((len(owner), lo.numel()), generator=generator)
    x = lo + (hi - lo) * noise.to(device=dev, dtype=dt)
    for _ in range(steps):
        checkpoint()
        if deadline is not None and time.monotonic() > deadline:
            break
        x.requires_grad_(True)
        y = graph.forward(x.reshape(len(x), *graph.input_shape)).reshape(len(x), -1)
        worst = (y @ C.T + d).masked_fill(foreign, float("-inf")).max(1).values
        (grad,) = torch.autograd.grad(worst.sum(), x)
        with torch.no_grad():
            hits = worst <= 0
            if hits.any():
                found = _confirm_owned(runner, regions, x, owner, hits, graph.input_shape)
                if found is not None:
                    return found
            x = torch.minimum(torch.maximum(x - step * grad.sign(), lo), hi)
    every = torch.ones(len(owner), dtype=torch.bool, device=dev)
    return _confirm_owned(runner, regions, x.detach(), owner, every, graph.input_shape)


def _confirm_owned(runner: OnnxRunner, regions: list[Region], x: torch.Tensor,
                   owner: torch.Tensor, chosen: torch.Tensor, shape: tuple[int, ...]
                   ) -> Counterexample | None:
    for k in owner[chosen].unique().tolist():
        pick = chosen & (owner == k)
        found = confirm(runner, regions[k], x[pick].detach().cpu().numpy(), shape, "pgd")
        if found is not None:
            return found
    return None
