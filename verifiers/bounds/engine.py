"""The bound cascade: IBP for everything, CROWN where IBP did not prove, alpha-CROWN last.

All three give sound lower bounds, so the reported bound per (sample, row) is the best of the
stages that ran. A sample is proved when all its rows are positive (robustness: every margin
y_label - y_j > 0) or, for a VNN-LIB clause, when any row is (one constraint that cannot hold).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor

from verifiers.bounds.alpha import AlphaConfig, optimise
from verifiers.bounds.crown import LinearSpec, interval_spec_lower, refine_bounds, spec_lower
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ibp import interval_bounds
from verifiers.bounds.ops import Interval


class Method(StrEnum):
    IBP = "ibp"
    CROWN = "crown"
    ALPHA_CROWN = "alpha-crown"




@dataclass(frozen=True)
class BoundConfig:
    alpha: AlphaConfig = field(default_factory=AlphaConfig)
    # (sample, row) pairs per backward pass when tightening intermediate bounds: caps memory
    # at about max_rows * (largest tensor of the graph) numbers.
    max_rows: int = 8192
    cascade: bool = True  # skip the stronger methods for samples a weaker one proved


@dataclass(frozen=True)
class SpecBounds:
    lower: Tensor  # [B, S], best lower bound of C y + d found
    proved: Tensor  # [B] bool
    proved_by: list[str]  # per sample: the method that proved it, "" if none


def proved_mask(lower: Tensor, require_all: bool) -> Tensor:
    return (lower > 0).all(1) if require_all else (lower > 0).any(1)


def bound_spec(graph: BoundGraph, box: Interval, spec: LinearSpec, method: Method,
               config: BoundConfig = BoundConfig(), *, require_all: bool = True,
               deadline: float | None = None) -> SpecBounds:
    """Lower bounds of ``C y + d`` over the box with ``method`` (and the weaker ones first)."""
    method = Method(method)
    batch = spec.C.shape[0]
    everyone = torch.arange(batch, device=spec.C.device)
    with torch.no_grad():
        bounds = interval_bounds(graph, box)
        lower = interval_spec_lower(spec, bounds[graph.output])
    proved_by = ["ibp" if p else "" for p in proved_mask(lower, require_all).tolist()]
    if method == Method.IBP:
        return _result(lower, proved_by, require_all)

    def pending(among: Tensor) -> Tensor:
        if not config.cascade:
            return torch.arange(len(among), device=among.device)
        return (~proved_mask(lower[among], require_all)).nonzero().squeeze(1)

    def credit(idx: Tensor, found: Tensor, stage: Method) -> None:
        lower[idx] = torch.maximum(lower[idx], found)
        for i, ok in zip(idx.tolist(), proved_mask(lower[idx], require_all).tolist(),
                         strict=True):
            if ok and not proved_by[i]:
                proved_by[i] = stage.value

    todo = everyone[pending(everyone)]
    if todo.numel() == 0 or _late(deadline):
        return _result(lower, proved_by, require_all)
    sub_box, sub_spec = _take(box, todo), spec.select(todo)
    with torch.no_grad():
        bounds, rows = refine_bounds(graph, sub_box, _take_all(bounds, todo), config.max_rows)
        credit(todo, spec_lower(graph, sub_box, sub_spec, bounds), Method.CROWN)
    if method == Method.CROWN:
        return _result(lower, proved_by, require_all)
    keep = pending(todo)  # positions within todo
    if keep.numel() == 0 or _late(deadline):
        return _result(lower, proved_by, require_all)
    idx = todo[keep]
    with torch.enable_grad():
        found = optimise(graph, _take(sub_box, keep), sub_spec.select(keep),
                         _take_all(bounds, keep), rows, lower[idx], config.alpha,
                         config.max_rows, lambda low: proved_mask(low, require_all), deadline)
    credit(idx, found, Method.ALPHA_CROWN)
    return _result(lower, proved_by, require_all)


def _result(lower: Tensor, proved_by: list[str], require_all: bool) -> SpecBounds:
    return SpecBounds(lower, proved_mask(lower, require_all), proved_by)


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _take(box: Interval, idx: Tensor) -> Interval:
    return Interval(box.lower[idx], box.upper[idx])


def _take_all(bounds: dict[str, Interval], idx: Tensor) -> dict[str, Interval]:
    return {k: _take(v, idx) for k, v in bounds.items()}
