"""alpha-CROWN (Xu et al. 2021): optimise the lower slopes of ReLU/LeakyReLU relaxations.

Any slope in [negative_slope, 1] gives a sound lower line, so every iterate is a sound bound
and the best one seen is kept (per sample and row). Slopes start at CROWN's choice and are
updated with Adam, then projected back into their range with an in-place clamp outside the
autograd graph (``torch.clamp`` inside the graph passes zero gradient exactly at the bound on
torch 2.14.1, which would freeze slopes initialised at 0 or 1).

Slopes are kept per (tensor being bounded, activation node): for the final specification one
slope per spec row and neuron; for intermediate bounds one slope per neuron shared by all rows
of that tensor (sharing is always sound, only less tight, and keeps memory linear).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiers.bounds.adam import Adam
from verifiers.bounds.crown import LinearSpec, refine_bounds, spec_lower
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops import Interval
from verifiers.bounds.passes import record
from verifiers.interrupt import checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlphaConfig:
    iterations: int = 20
    lr: float = 0.25
    patience: int = 4  # stop after this many iterations without improvement ...
    min_improvement: float = 1e-4  # ... of the summed bound by at least this much
    optimize_intermediate: bool = True  # also re-bound intermediate tensors with own slopes


def optimise(graph: BoundGraph, box: Interval, spec: LinearSpec,
             base: Mapping[str, Interval], rows: Mapping[str, Tensor], start: Tensor,
             config: AlphaConfig, max_rows: int, done: Callable[[Tensor], Tensor],
             deadline: float | None = None) -> Tensor:
    """Best lower bound of the spec found, never below ``start`` (the CROWN bound)."""
    record("alpha")
    alphas = _initial_slopes(graph, spec, base, rows, config)
    params = [a for per_start in alphas.values() for a in per_start.values()]
    best = start.detach().clone()
    if not params or config.iterations <= 0:
        return best
    ranges = {n.output: n.op.alpha_range() for n in graph.nodes if n.op.has_alpha}
    opt = Adam(params, config.lr)
    stall, last = 0, best.sum().item()
    for step in range(config.iterations):
        checkpoint()
        if config.optimize_intermediate:
            bounds, _ = refine_bounds(graph, box, base, max_rows, rows, alphas)
        else:
            bounds = dict(base)
        lower = spec_lower(graph, box, spec, bounds, alphas[graph.output])
        best = torch.maximum(best, lower.detach())
        total = best.sum().item()
        stall = 0 if total > last + config.min_improvement else stall + 1
        last = max(last, total)
        if bool(done(best).all()) or stall >= config.patience:
            break
        if deadline is not None and time.monotonic() > deadline:
            log.debug("alpha-CROWN stopped by the deadline at iteration %d", step)
            break
        for a in params:
            a.grad = None
        (-lower.sum()).backward()
        opt.step()
        with torch.no_grad():
            for per_start in alphas.values():
                for name, a in per_start.items():
                    a.clamp_(*ranges[name])
    return best


def _initial_slopes(graph: BoundGraph, spec: LinearSpec, base: Mapping[str, Interval],
                    rows: Mapping[str, Tensor], config: AlphaConfig
                    ) -> dict[str, dict[str, Tensor]]:
    starts = [t for t, idx in rows.items() if idx.numel()] if config.optimize_intermediate else []
    spec_rows = spec.C.shape[1]
    alphas: dict[str, dict[str, Tensor]] = {}
    for start in [*starts, graph.output]:
        upstream = graph.upstream(start)
        per_start: dict[str, Tensor] = {}
        for node in graph.nodes:
            if not node.op.has_alpha or node.output not in upstream:
                continue
            init = node.op.init_alpha(base[node.inputs[0]]).unsqueeze(1)
            if start == graph.output:
                init = init.expand(init.shape[0], spec_rows, *init.shape[2:])
            per_start[node.output] = init.detach().clone().requires_grad_(True)
        alphas[start] = per_start
    return alphas

