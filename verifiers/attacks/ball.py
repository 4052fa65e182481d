"""The perturbation set of a threat model: an Lp ball intersected with the valid input box.

Every attack moves through the same four operations (random start, steepest-ascent direction,
projection, norm), so a new norm is added here once and every attack gains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verifiers.attacks.rowrandom import Randomness, uniform
from verifiers.data import InputDomain

NORMS = ("linf", "l2", "l1")

# L2/L1 projections land on the sphere up to float32 rounding; aim slightly inside it so the
# onnxruntime re-check (float64 norms) never sees a one-ulp overshoot.
_SHRINK = 1.0 - 2e-6


@dataclass(frozen=True)
class Ball:
    norm: str
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; use one of {NORMS}")


def flat_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of a batch of perturbations."""
    flat = delta.reshape(len(delta), -1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(dim=1)
    return flat.abs().sum(dim=1)


def numpy_norm(delta: np.ndarray, norm: str) -> np.ndarray:
    """Per-sample norm in float64, the re-check's reference."""
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    if norm == "linf":
        return np.abs(flat).max(axis=1)
    if norm == "l2":
        return np.sqrt((flat ** 2).sum(axis=1))
    return np.abs(flat).sum(axis=1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def project(x0: torch.Tensor, x: torch.Tensor, ball: Ball, domain: InputDomain,
            eps: torch.Tensor | None = None) -> torch.Tensor:
    """A point of (ball around x0) intersected with the box, close to x.

    Exact for Linf and L1; for L2 the ball projection followed by the box clip, which stays
    feasible because clipping towards a box that contains x0 never lengthens a coordinate.
    ``eps`` overrides the radius per sample (FAB shrinks it).
    """
    radius = eps if eps is not None else torch.full((len(x),), ball.eps, device=x.device)
    delta = x - x0
    if ball.norm == "linf":
        r = _per_sample(radius, x)
        delta = torch.maximum(torch.minimum(delta, r), -r)
    elif ball.norm == "l2":
        n = flat_norm(delta, "l2")
        scale = torch.clamp(radius * _SHRINK / (n + 1e-12), max=1.0)
        delta = delta * _per_sample(scale, x)
    else:
        delta = _project_l1_box(delta, x0, radius * _SHRINK, domain)
    return torch.clamp(x0 + delta, domain.low, domain.high)


def _project_l1_box(delta: torch.Tensor, x0: torch.Tensor, radius: torch.Tensor,
                    domain: InputDomain) -> torch.Tensor:
    """Euclidean projection onto {||d||_1 <= r} intersected with the box, by bisection.

    The solution soft-thresholds |d| by a shared lambda and caps it at the room to the box
    edge in that direction; sum_i of that is monotone in lambda.
    """
    room = torch.where(delta >= 0, domain.high - x0, x0 - domain.low).clamp_min(0)
    flat, cap = delta.abs().reshape(len(delta), -1), room.reshape(len(delta), -1)

    def mass(lam: torch.Tensor) -> torch.Tensor:
        return torch.minimum((flat - lam[:, None]).clamp_min(0), cap).sum(dim=1)

    lo = torch.zeros(len(flat), device=flat.device)
    hi = flat.amax(dim=1)
    inside = mass(lo) <= radius
    for _ in range(40):
        mid = (lo + hi) / 2
        too_big = mass(mid) > radius
        lo = torch.where(too_big, mid, lo)
        hi = torch.where(too_big, hi, mid)
    lam = torch.where(inside, torch.zeros_like(hi), hi)  # hi is always on the feasible side
    shrunk = torch.minimum((flat - lam[:, None]).clamp_min(0), cap)
    return torch.sign(delta) * shrunk.reshape(delta.shape)


def random_start(x0: torch.Tensor, ball: Ball, domain: InputDomain, rand: Randomness,
                 draw: int = 0) -> torch.Tensor:
    """A random point of the feasible set (drawn on x0's device)."""
    noise = uniform(rand, x0.shape, draw, x0.device) * 2 - 1
    if ball.norm == "linf":
        delta = ball.eps * noise
    else:
        n = flat_norm(noise, ball.norm)
        delta = noise * _per_sample(ball.eps / (n + 1e-12), noise)
        if ball.norm == "l1":
            delta = delta * 0.5  # half the budget: a full-L1 start is already sparse-saturated
    return project(x0, x0 + delta, ball, domain)


def ascent_direction(grad: torch.Tensor, norm: str, x: torch.Tensor | None = None,
                     x0: torch.Tensor | None = None, domain: InputDomain | None = None,
                     sparsity: float = 0.97) -> torch.Tensor:
    """Steepest ascent direction of unit norm (Linf: sign; L2: normalised; L1: sparse).

    For L1 (Croce & Hein 2021) the step moves only the coordinates with the largest gradient
    that can still move towards the sign of their gradient, the (1 - sparsity) top fraction.
    """
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        n = flat_norm(grad, "l2")
        return grad / _per_sample(n + 1e-12, grad)
    g = grad
    if x is not None and domain is not None:
        blocked = ((g > 0) & (x >= domain.high)) | ((g < 0) & (x <= domain.low))
        g = torch.where(blocked, torch.zeros_like(g), g)
    flat = g.abs().reshape(len(g), -1)
    k = max(1, int(round((1 - sparsity) * flat.shape[1])))
    thresh = flat.topk(k, dim=1).values[:, -1:]
    mask = (flat >= thresh) & (flat > 0)
    d = torch.sign(g).reshape(len(g), -1) * mask
    d = d / d.abs().sum(dim=1, keepdim=True).clamp_min(1.0)
    return d.reshape(g.shape)


def initial_step(norm: str) -> float:
    """APGD's first step size, in units of eps (2 eps for Linf/L2; L1 steps are full-budget)."""
    return 1.0 if norm == "l1" else 2.0
