"""Spatial robustness: worst case over a grid of rotations and translations (Engstrom et al.
2019: +-30 degrees, +-3 pixels), evaluated on the ORIGINAL model through onnxruntime.

A sample counts as spatially robust only if every transform of the grid (the identity
included) is classified correctly. Grid search is exhaustive, so it needs no gradients and
no seed; out-of-image pixels are filled with the domain's low end (black).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from verifiers.attacks.budget import SpatialBudget
from verifiers.data import InputDomain
from verifiers.diskarrays import block_rows
from verifiers.interrupt import checkpoint

Predict = Callable[[np.ndarray], np.ndarray]
_ROWS_PER_CALL = 4096
_BYTES_PER_CALL = 256 * 1024 * 1024  # transformed rows per call, for large sets


@dataclass
class SpatialOutcome:
    robust: np.ndarray          # bool per sample
    worst: np.ndarray           # index into ``grid`` of the first breaking transform, -1 if none
    grid: list[tuple[float, int, int]]  # (degrees, dx, dy)
    forward_passes: int


def grid(budget: SpatialBudget) -> list[tuple[float, int, int]]:
    """The identity first, then every (rotation, dx, dy) of the grid."""
    if budget.rotations > 1:
        angles = np.linspace(-budget.max_rotation, budget.max_rotation, budget.rotations)
    else:
        angles = np.zeros(1)
    shifts = range(-budget.max_translation, budget.max_translation + 1, budget.translation_step)
    points = [(float(a), dx, dy) for a in angles for dx in shifts for dy in shifts]
    points.sort(key=lambda p: (abs(p[0]) + abs(p[1]) + abs(p[2]) > 0, abs(p[0]), p))
    return points


def transform(x: torch.Tensor, degrees: float, dx: int, dy: int, low: float) -> torch.Tensor:
    """Rotate about the centre then shift by (dx, dy) pixels; bilinear, filled with ``low``."""
    n, _, h, w = x.shape
    a = math.radians(degrees)
    inv = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]],
                       dtype=x.dtype, device=x.device)  # output -> input pixel rotation
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device))
    to_pix = torch.diag(torch.tensor([w / 2.0, h / 2.0], dtype=x.dtype, device=x.device))
    shift = torch.tensor([float(dx), float(dy)], dtype=x.dtype, device=x.device)
    theta = torch.cat([to_norm @ inv @ to_pix, (to_norm @ inv @ -shift)[:, None]], dim=1)
    grid_ = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    moved = F.grid_sample(x - low, grid_, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return moved + low


def spatial_attack(predict: Predict, x: np.ndarray, y: np.ndarray, budget: SpatialBudget,
                   domain: InputDomain, device: torch.device) -> SpatialOutcome:
    if x.ndim != 4:
        raise ValueError(f"spatial transforms need (N, C, H, W) inputs, got {x.shape}")
    points = grid(budget)
    step = block_rows(x)
    if len(x) <= step:
        # A copy (at most one block): ``x`` may be a read-only memory map.
        return _spatial(predict, np.array(x), y, points, domain, device, _ROWS_PER_CALL)
    # A large (possibly memory-mapped) set: block by block, each block in memory, calls
    # capped in bytes too. Each sample's outcome is its own, so blocks change no result.
    row_bytes = x[0].nbytes
    rows = max(step, min(_ROWS_PER_CALL, _BYTES_PER_CALL // row_bytes))
    parts = [_spatial(predict, np.array(x[lo:lo + step]), y[lo:lo + step], points, domain,
                      device, rows)
             for lo in range(0, len(x), step)]
    return SpatialOutcome(np.concatenate([p.robust for p in parts]),
                          np.concatenate([p.worst for p in parts]), points,
                          sum(p.forward_passes for p in parts))


def _spatial(predict: Predict, x: np.ndarray, y: np.ndarray, points: list,
             domain: InputDomain, device: torch.device, rows_per_call: int) -> SpatialOutcome:
    robust = np.ones(len(x), dtype=bool)
    worst = np.full(len(x), -1)
    passes = 0
    per_call = max(1, rows_per_call // max(len(x), 1))
    xt = torch.from_numpy(x).to(device)
    for start in range(0, len(points), per_call):
        checkpoint()
        alive = np.flatnonzero(robust)
        if len(alive) == 0:
            break
        chunk = points[start:start + per_call]
        batch = torch.cat([transform(xt[alive], *p, low=domain.low) for p in chunk])
        batch = batch.clamp(domain.low, domain.high).cpu().numpy()
        pred = predict(batch).reshape(len(chunk), len(alive))
        passes += batch.shape[0]
        wrong = pred != y[alive][None, :]
        for j in range(len(chunk)):
            hit = alive[wrong[j] & robust[alive]]
            worst[hit] = start + j
            robust[hit] = False
    return SpatialOutcome(robust, worst, points, passes)
