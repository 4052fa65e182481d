"""The bound cascade: IBP for everything, CROWN where IBP did not prove, alpha-CROWN last.

All three give sound lower bounds, so the reported bound per (sample, row) is the best of the
stages that ran. A sample is proved when all its rows are positive (robustness: every margin
y_label - y_j > 0) or, for a VNN-LIB clause, when any row is (one constraint that cannot hold).
Several clauses over one box are rows of one spec (``clauses``: the clause of each row), so
they share one intermediate-bound pass; a sample is proved when every clause has a positive row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


_STAGES = list(Method)


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
    # [B, S]: index in list(Method) of the first stage that made each row positive, -1 never
    row_stage: Tensor | None = None


def proved_mask(lower: Tensor, require_all: bool, clauses: Tensor | None = None) -> Tensor:
    if clauses is not None:  # clauses without a row here count as proved elsewhere
        absent = torch.ones(_count(clauses), dtype=torch.bool, device=lower.device)
        absent[clauses] = False
        return (clause_proved(lower, clauses) | absent).all(1)
    return (lower > 0).all(1) if require_all else (lower > 0).any(1)


def clause_proved(lower: Tensor, clauses: Tensor) -> Tensor:
    """[B, number of clauses]: does some row of the clause have a positive lower bound?"""
    hits = torch.zeros(lower.shape[0], _count(clauses), device=lower.device)
    return hits.index_add_(1, clauses, (lower > 0).to(hits.dtype)) > 0


def _count(clauses: Tensor) -> int:
    return int(clauses.max()) + 1 if clauses.numel() else 0


def bound_spec(graph: BoundGraph, box: Interval, spec: LinearSpec, method: Method,
               config: BoundConfig = BoundConfig(), *, require_all: bool = True,
               deadline: float | None = None, clauses: Tensor | None = None) -> SpecBounds:
    """Lower bounds of ``C y + d`` over the box with ``method`` (and the weaker ones first).

    ``clauses`` ([S] ints, optional) groups the rows into clauses, each proved by any of its
    rows; then ``require_all`` is ignored and a sample needs every clause proved.
    """
    method = Method(method)
    batch = spec.C.shape[0]
    everyone = torch.arange(batch, device=spec.C.device)
    with torch.no_grad():
        bounds = interval_bounds(graph, box)
        lower = interval_spec_lower(spec, bounds[graph.output])
    stage = torch.where(lower > 0, 0, -1)

    def done(low: Tensor, rows: Tensor | None = None) -> Tensor:
        own = clauses if clauses is None or rows is None else clauses[rows]
        return proved_mask(low, require_all, own)

    proved_by = ["ibp" if p else "" for p in done(lower).tolist()]
    if method == Method.IBP:
        return _result(lower, proved_by, done, stage)

    def pending(among: Tensor) -> Tensor:
        if not config.cascade:
            return torch.arange(len(among), device=among.device)
        return (~done(lower[among])).nonzero().squeeze(1)

    def credit(idx: Tensor, rows: Tensor, found: Tensor, how: Method) -> None:
        grid = (idx[:, None], rows[None, :])
        lower[grid] = torch.maximum(lower[grid], found)
        stage[grid] = torch.where((stage[grid] < 0) & (lower[grid] > 0), _STAGES.index(how),
                                  stage[grid])
        for i, ok in zip(idx.tolist(), done(lower[idx]).tolist(), strict=True):
            if ok and not proved_by[i]:
                proved_by[i] = how.value

    every_row = torch.arange(spec.C.shape[1], device=spec.C.device)
    todo = everyone[pending(everyone)]
    if todo.numel() == 0 or _late(deadline):
        return _result(lower, proved_by, done, stage)
    sub_box, sub_spec = _take(box, todo), spec.select(todo)
    with torch.no_grad():
        bounds, rows = refine_bounds(graph, sub_box, _take_all(bounds, todo), config.max_rows)
        credit(todo, every_row, spec_lower(graph, sub_box, sub_spec, bounds), Method.CROWN)
    if method == Method.CROWN:
        return _result(lower, proved_by, done, stage)
    keep = pending(todo)  # positions within todo
    if keep.numel() == 0 or _late(deadline):
        return _result(lower, proved_by, done, stage)
    idx = todo[keep]
    # Only rows of clauses still open somewhere are optimised (proved ones would only steer
    # the slopes towards bounds that are already good enough).
    open_rows = every_row if clauses is None or not config.cascade else \
        (~clause_proved(lower[idx], clauses))[:, clauses].any(0).nonzero().squeeze(1)
    spec_open = LinearSpec(sub_spec.C[keep][:, open_rows], sub_spec.d[keep][:, open_rows])
    with torch.enable_grad():
        found = optimise(graph, _take(sub_box, keep), spec_open, _take_all(bounds, keep), rows,
                         lower[idx][:, open_rows], config.alpha, config.max_rows,
                         lambda low: done(low, open_rows), deadline)
    credit(idx, open_rows, found, Method.ALPHA_CROWN)
    return _result(lower, proved_by, done, stage)


def _result(lower: Tensor, proved_by: list[str], done: Callable[[Tensor], Tensor],
            stage: Tensor) -> SpecBounds:
    return SpecBounds(lower, done(lower), proved_by, stage)


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() > deadline


def _take(box: Interval, idx: Tensor) -> Interval:
    return Interval(box.lower[idx], box.upper[idx])


def _take_all(bounds: dict[str, Interval], idx: Tensor) -> dict[str, Interval]:
    return {k: _take(v, idx) for k, v in bounds.items()}
