"""beta-CROWN bounds of a batch of subdomains (Wang et al. 2021).

A ReLU split fixes the sign of its input neuron ``z`` in a subdomain: ``s z >= 0`` with
``s = +1`` (active) or ``-1`` (inactive). The split enters the bound twice:

- as a fixed phase: the stored bounds of ``z`` are clamped at 0, so the ReLU's relaxation is
  exact there and every later layer's intermediate bounds (recomputed by the caller) tighten;
- as a Lagrangian term: for any ``beta >= 0``, ``min f >= min_x f(x) - beta s z(x)`` over the
  constrained set, so ``-beta s`` is added to the coefficients of ``z`` when the backward walk
  reaches it. ``beta`` (per subdomain, spec row and split neuron) is optimised with Adam
  together with the ReLU lower slopes (alpha), every iterate a sound bound.

The walk is our own copy of ``crown.backward_lower`` because it adds those terms and records
the coefficients at the ReLU outputs (the branching heuristic reads them); the incomplete
tier keeps the lean path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiers.bounds.adam import Adam
from verifiers.bounds.crown import backward_step, concretize
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops import Interval


@dataclass(frozen=True)
class Walk:
    lower: Tensor  # [B, S] lower bound of A0 . output (no spec constant)
    relu_coeffs: dict[str, Tensor]  # ReLU output tensor -> coefficients [B, S, *shape]
    input_coeffs: Tensor | None  # [B, S, *input_shape]


def walk(graph: BoundGraph, bounds: Mapping[str, Interval], A0: Tensor,
         alphas: Mapping[str, Tensor] | None = None,
         lagrange: Mapping[str, Tensor] | None = None,
         record: frozenset[str] = frozenset()) -> Walk:
    """Backward walk from the output with Lagrangian terms ``lagrange[z]`` (= beta * s,
    [B, S, *shape]) subtracted from the coefficients of each split tensor ``z``."""
    box = bounds[graph.input_name]
    coeffs: dict[str, Tensor] = {graph.output: A0}
    bias = torch.zeros(A0.shape[:2], dtype=A0.dtype, device=A0.device)
    seen: dict[str, Tensor] = {}
    for node in reversed(graph.nodes):
        A = coeffs.pop(node.output, None)
        extra = lagrange.get(node.output) if lagrange else None
        if extra is not None:
            A = -extra if A is None else A - extra
        if A is None:
            continue
        if node.output in record:
            seen[node.output] = A.detach()
        b = backward_step(node, A, bounds, alphas, coeffs)
        if b is not None:
            bias = bias + b
    A_x = coeffs.get(graph.input_name)
    lower = bias if A_x is None else bias + concretize(A_x, box)
    return Walk(lower, seen, A_x)


@dataclass(frozen=True)
class OptimConfig:
    iterations: int = 10
    lr_alpha: float = 0.1
    lr_beta: float = 0.05
    beta: bool = True  # False: splits only as fixed phases (no Lagrangian terms)


@dataclass(frozen=True)
class Optimised:
    lower: Tensor  # [B, S] best bound seen (spec constant included)
    alphas: dict[str, Tensor]
    betas: dict[str, Tensor]


def optimise(graph: BoundGraph, bounds: Mapping[str, Interval], C: Tensor, d: Tensor,
             alphas: Mapping[str, Tensor], betas: Mapping[str, Tensor],
             signs: Mapping[str, Tensor], config: OptimConfig,
             deadline: float | None = None) -> Optimised:
    """Joint alpha/beta optimisation of the lower bounds of ``C y + d`` per subdomain.

    ``alphas``: ReLU output -> slopes [B, S, *shape] (start values, e.g. the parent's);
    ``betas``: split tensor -> multipliers [B, S, *shape]; ``signs``: split tensor ->
    int8 [B, *shape] in {-1, 0, +1}. The subdomain is proved once any row is positive.
    """
    batch, rows = C.shape[:2]
    A0 = C.reshape(batch, rows, *graph.output_shape)
    ranges = {n.output: n.op.alpha_range() for n in graph.nodes if n.op.has_alpha}
    a = {k: v.detach().clone().requires_grad_(True) for k, v in alphas.items()}
    s = {k: v.to(C.dtype).unsqueeze(1) for k, v in signs.items()}
    use_beta = config.beta and any(bool(v.any()) for v in signs.values())
    b = {k: v.detach().clone().requires_grad_(use_beta) for k, v in betas.items()}

    def bound() -> Tensor:
        lagrange = {k: b[k] * s[k] for k in b} if use_beta else None
        return walk(graph, bounds, A0, a, lagrange).lower + d

    if config.iterations <= 0 or not (a or use_beta):
        with torch.no_grad():
            return Optimised(bound(), _detached(a), _detached(b))
    params = list(a.values()) + (list(b.values()) if use_beta else [])
    rates = [config.lr_alpha] * len(a) + [config.lr_beta] * (len(params) - len(a))
    adam = Adam(params, rates)
    best = None
    best_a, best_b = _detached(a), _detached(b)
    for _ in range(config.iterations):
        with torch.enable_grad():
            lower = bound()
        now = lower.detach()
        if best is None:
            best = now.clone()
        else:
            better = now.max(1).values > best.max(1).values  # per subdomain: keep its state
            _keep(best_a, a, better)
            _keep(best_b, b, better)
            best = torch.maximum(best, now)
        if not lower.requires_grad or bool((best > 0).any(1).all()) or (
                deadline is not None and time.monotonic() > deadline):
            break  # no free slope/multiplier reaches the bound, all proved, or out of time
        with torch.enable_grad():
            grads = torch.autograd.grad(-lower.sum(), params, allow_unused=True)
        with torch.no_grad():  # projections in place: clamp inside autograd kills gradients
            adam.step(grads)
            for name, t in a.items():
                t.clamp_(*ranges[name])
            for t in b.values():
                t.clamp_(min=0.0)
    return Optimised(best, best_a, best_b)


def _detached(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in params.items()}


def _keep(store: dict[str, Tensor], params: Mapping[str, Tensor], rows: Tensor) -> None:
    if not bool(rows.any()):
        return
    for k, v in params.items():
        store[k][rows] = v.detach()[rows]

