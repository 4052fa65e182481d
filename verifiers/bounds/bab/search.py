"""Branch and bound over the bound engine: the complete tier for networks it can bound.

``branch_and_bound(graph, regions, runner, config, deadline)`` decides whether any region of a
VNN-LIB style property (an input box and ``C y + d <= 0``) holds a point:

1. root: IBP and CROWN intermediate bounds per region, alpha-CROWN on the spec rows; a region
   whose bound proves some row positive is empty;
2. loop, best-first: take the ``batch_size`` open subdomains with the lowest bound, try their
   bound-minimising inputs as counterexamples (and PGD every ``pgd_every`` batches), split each
   in two (a ReLU neuron, or an input dimension for networks with few inputs), bound all
   children in one batch (beta-CROWN: see ``beta``) and keep the children not yet proved;
3. the property holds when no open subdomain is left; any candidate counterexample is
   reported only after onnxruntime confirms it on the original model (``falsify.confirm``).

The deadline (``time.monotonic()`` seconds) and the cancel hook are checked between batches and
inside the bound optimisation; running out of either gives ``unknown`` with the reason, never a
verdict the search did not reach.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from verifiers.bounds.bab.beta import OptimConfig, Walk, optimise, walk
from verifiers.bounds.bab.branching import (
    SplitLayer,
    apply_splits,
    choose_input,
    choose_relu,
    split_layers,
)
from verifiers.bounds.bab.domains import Domains, Pool
from verifiers.bounds.bab.lp import settle
from verifiers.bounds.crown import refine_bounds
from verifiers.bounds.falsify import Counterexample, FalsifyConfig, by_pgd, confirm, outward_float32
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ibp import interval_bounds
from verifiers.bounds.ops import Interval
from verifiers.bounds.vnnlib import Region
from verifiers.interrupt import checkpoint
from verifiers.model import OnnxRunner

log = logging.getLogger(__name__)

_PAD = -1e9  # spec constant of padding rows: never proves a subdomain, always "violated"


@dataclass(frozen=True)
class BabConfig:
    batch_size: int = 64  # subdomains split per batch (2x children bounded together)
    optim: OptimConfig = field(default_factory=OptimConfig)  # alpha/beta steps per batch
    root_iterations: int = 20  # alpha-CROWN steps at the root
    branching: str = "fsb"  # "fsb" (filtered smart branching) or "babsr"
    fsb_candidates: int = 3  # shortlist per score for FSB
    split: str = "auto"  # "relu", "input", or "auto": input splitting for few inputs
    input_split_max_dims: int = 10
    input_split_iterations: int = 0  # alpha steps per input-split batch (0: CROWN only)
    max_domains: int = 200_000  # open subdomains kept before giving up (memory)
    # A work budget (batches of subdomains), the same on every machine; None: until the
    # deadline. The certified check stops on it, so its figures do not depend on speed.
    max_batches: int | None = None
    pgd_every: int = 8  # batches between interleaved PGD runs
    falsify: FalsifyConfig = field(default_factory=lambda: FalsifyConfig(pgd_restarts=8))
    max_rows: int = 8192  # rows per backward pass when tightening intermediate bounds


@dataclass(frozen=True)
class BabResult:
    status: str  # "holds" | "violated" | "unknown"
    reason: str  # why unknown ("" otherwise)
    counterexample: Counterexample | None  # confirmed on onnxruntime
    region: int | None  # index (into the regions given) of the violated region
    open_regions: tuple[int, ...]  # regions neither proved nor falsified
    split: str  # "relu" or "input"
    domains: int  # subdomains bounded (root regions included)
    batches: int
    max_depth: int
    seconds: float
    settled: int = 0  # subdomains with every ReLU fixed that a linear program's duals proved
    # what ended an "unknown": "time" (the deadline), "work" (max_batches), "domains",
    # "cancel", "stuck"; "" when decided
    stopped_by: str = ""


def branch_and_bound(graph: BoundGraph, regions: Sequence[Region], runner: OnnxRunner,
                     config: BabConfig = BabConfig(), deadline: float | None = None, *,
                     cancel: Callable[[], bool] | None = None) -> BabResult:
    """Decide the property "no region holds a point": holds / violated / unknown."""
    return _Search(graph, list(regions), runner, config, deadline, cancel).run()


class _Search:
    def __init__(self, graph: BoundGraph, regions: list[Region], runner: OnnxRunner,
                 config: BabConfig, deadline: float | None,
                 cancel: Callable[[], bool] | None) -> None:
        self.graph, self.regions, self.runner, self.config = graph, regions, runner, config
        self.deadline, self.cancel = deadline, cancel
        self.t0 = time.perf_counter()
        self.layers = split_layers(graph)
        n_inputs = math.prod(graph.input_shape)
        mode = config.split
        if mode == "auto":
            few = n_inputs <= config.input_split_max_dims
            mode = "input" if few or not self.layers else "relu"
        self.mode = mode
        self.domains = self.batches = self.depth = self.stuck = 0
        self.stuck_regions: set[int] = set()  # regions with a subdomain nothing can split
        self.settled = 0  # subdomains with every ReLU fixed that a linear program proved
        self.generator = torch.Generator().manual_seed(config.falsify.seed)
        dev, dt = graph.device, graph.dtype
        rows = max((r.C.shape[0] for r in regions), default=1)
        k = graph.num_outputs
        self.C = torch.zeros(len(regions), rows, k, dtype=dt, device=dev)
        self.d = torch.full((len(regions), rows), _PAD, dtype=dt, device=dev)
        lows, highs = [], []
        for i, r in enumerate(regions):
            m = r.C.shape[0]
            self.C[i, :m] = torch.as_tensor(r.C, dtype=dt, device=dev)
            self.d[i, :m] = torch.as_tensor(r.d, dtype=dt, device=dev)
            lo, hi = outward_float32(r.lower, r.upper)
            lows.append(torch.as_tensor(lo, dtype=dt, device=dev).reshape(graph.input_shape))
            highs.append(torch.as_tensor(hi, dtype=dt, device=dev).reshape(graph.input_shape))
        self.box = Interval(torch.stack(lows), torch.stack(highs)) if regions else None
        self.real = torch.zeros_like(self.d, dtype=torch.bool)  # [R, S]: rows not padding
        for i, r in enumerate(regions):
            self.real[i, :r.C.shape[0]] = True
        self.found: tuple[Counterexample, int] | None = None  # from a settled subdomain
        self.stopped_by = ""

    # ------------------------------------------------------------------ the loop

    def run(self) -> BabResult:
        if not self.regions:
            return self._result("holds", "")
        for i, r in enumerate(self.regions):  # no output constraint: every input violates
            if r.C.shape[0] == 0:
                centre = ((r.lower + r.upper) / 2)[None]
                ce = confirm(self.runner, r, centre, self.graph.input_shape, "bab")
                if ce is not None:
                    return self._result("violated", "", ce, i)
        pool = Pool()
        root = self._root()
        pool.push(root.take((root.score() <= 0).nonzero().squeeze(1)))
        while len(pool):
            reason = self._interrupted(len(pool))
            if reason:
                return self._result("unknown", reason, open_regions=self._open(pool))
            parents = pool.pop(self.config.batch_size)
            self.batches += 1
            w = self._parent_walk(parents)
            ce, region = self._attack(parents, w)
            if ce is not None:
                return self._result("violated", "", ce, region)
            children = self._branch(parents, w)
            if self.found is not None:
                return self._result("violated", "", *self.found)
            self.domains += len(children)
            if len(children):
                self.depth = max(self.depth, int(children.depth.max()))
            pool.push(children.take((children.score() <= 0).nonzero().squeeze(1)))
        if self.stuck:
            self.stopped_by = "stuck"
            return self._result("unknown", f"branch and bound: {self.stuck} subdomain(s) that "
                                "cannot be split further (every ReLU fixed, or the input box "
                                "too narrow) neither proved nor falsified",
                                open_regions=self._open(pool))
        return self._result("holds", "")

    def _open(self, pool: Pool) -> list[int]:
        return sorted(set(pool.regions()) | self.stuck_regions)

    def _interrupted(self, open_count: int) -> str:
        checkpoint()
        if self.cancel is not None and self.cancel():
            self.stopped_by = "cancel"
            return "branch and bound cancelled"
        limit = self.config.max_batches
        if limit is not None and self.batches >= limit:
            self.stopped_by = "work"
            return (f"branch and bound used its work budget of {limit} batches with "
                    f"{open_count} open subdomains ({self.domains} bounded, depth {self.depth})")
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stopped_by = "time"
            return (f"branch and bound ran out of time with {open_count} open subdomains "
                    f"({self.domains} bounded, depth {self.depth})")
        if open_count > self.config.max_domains:
            self.stopped_by = "domains"
            return (f"branch and bound stopped at {open_count} open subdomains "
                    f"(max_domains={self.config.max_domains})")
        return ""

    def _result(self, status: str, reason: str, ce: Counterexample | None = None,
                region: int | None = None, open_regions: Sequence[int] = ()) -> BabResult:
        return BabResult(status, reason, ce, region, tuple(open_regions), self.mode,
                         self.domains, self.batches, self.depth, time.perf_counter() - self.t0,
                         self.settled, self.stopped_by if status == "unknown" else "")

    # ------------------------------------------------------------------ bounding

    def _root(self) -> Domains:
        graph, n = self.graph, len(self.regions)
        assert self.box is not None
        with torch.no_grad():
            bounds = interval_bounds(graph, self.box)
            bounds, _ = refine_bounds(graph, self.box, bounds, self.config.max_rows)
        rows = self.C.shape[1]
        alphas = {}
        for node in graph.nodes:
            if node.op.has_alpha:
                init = node.op.init_alpha(bounds[node.inputs[0]]).unsqueeze(1)
                alphas[node.output] = init.expand(n, rows, *init.shape[2:]).contiguous()
        signs = {L.z: torch.zeros_like(bounds[L.z].lower, dtype=torch.int8)
                 for L in self.layers}
        betas = {L.z: torch.zeros(n, rows, *bounds[L.z].lower.shape[1:], dtype=graph.dtype,
                                  device=graph.device) for L in self.layers}
        dom = Domains(torch.arange(n, device=graph.device), dict(bounds), signs, alphas, betas,
                      torch.full((n, rows), -math.inf, dtype=graph.dtype, device=graph.device),
                      torch.zeros(n, dtype=torch.long, device=graph.device))
        self._bound(dom, replace(self.config.optim, iterations=self.config.root_iterations))
        self.domains += n
        return dom

    def _bound(self, dom: Domains, optim: OptimConfig) -> None:
        """Final bounds of ``dom`` (intermediate bounds already set), in place; a child's
        bound is never below its parent's (its set is a subset)."""
        res = optimise(self.graph, dom.bounds, self.C[dom.region], self.d[dom.region],
                       dom.alphas, dom.betas, dom.signs, optim, self.deadline)
        dom.lower = torch.maximum(dom.lower, res.lower)
        dom.alphas, dom.betas = res.alphas, res.betas

    def _branch(self, parents: Domains, w: Walk) -> Domains:
        if self.mode == "input":
            return self._split_inputs(parents, w)
        return self._split_relus(parents, w)

    def _parent_walk(self, parents: Domains) -> Walk:
        """The parents' bound once more, recording the coefficients the branching heuristic
        and the counterexample candidates read."""
        C = self.C[parents.region]
        lagrange = {k: parents.betas[k] * parents.signs[k].to(C.dtype).unsqueeze(1)
                    for k in parents.betas}
        A0 = C.reshape(len(parents), C.shape[1], *self.graph.output_shape)
        with torch.no_grad():
            return walk(self.graph, parents.bounds, A0, parents.alphas, lagrange,
                        frozenset(L.out for L in self.layers))

    def _split_relus(self, parents: Domains, w: Walk) -> Domains:
        target = parents.lower.argmax(1)
        with torch.no_grad():
            layer, neuron, ok = choose_relu(self.graph, parents, self.layers, w.relu_coeffs,
                                            target, self.C[parents.region],
                                            self.d[parents.region], self.config.branching,
                                            self.config.fsb_candidates)
        if not bool(ok.all()):
            self._settle(parents.take((~ok).nonzero().squeeze(1)))
        keep = ok.nonzero().squeeze(1)
        twice = keep.repeat_interleave(2)
        children = parents.take(twice)
        phase = torch.tensor([1, -1], device=twice.device).repeat(len(keep))
        apply_splits(children, self.layers, layer[twice], neuron[twice], phase)
        children.depth = children.depth + 1
        with torch.no_grad():
            self._refine_after_splits(children, layer[twice])
        self._bound(children, self.config.optim)
        return children

    def _settle(self, fixed: Domains) -> None:
        """Subdomains with every ReLU fixed: decided by a linear program (see ``lp``)."""
        proved, candidates = settle(self.graph, self.layers, fixed, self.C[fixed.region],
                                    self.d[fixed.region], self.real[fixed.region])
        self.settled += int(proved.sum())
        log.debug("linear programs: %d of %d fixed subdomains proved, %d candidates",
                  int(proved.sum()), len(fixed), sum(x is not None for x in candidates))
        for i, x in enumerate(candidates):
            r = int(fixed.region[i])
            if x is not None and self.found is None:
                ce = confirm(self.runner, self.regions[r], x[None], self.graph.input_shape,
                             "bab-lp")
                if ce is not None:
                    self.found = (ce, r)
                    return
            if not bool(proved[i]):
                self.stuck += 1
                self.stuck_regions.add(r)

    def _refine_after_splits(self, dom: Domains, layer: Tensor) -> None:
        """Recompute intermediate bounds after each child's split layer only: the bounds of
        earlier layers are the parent's and still hold."""
        consumers = self.graph.bounded_tensors()
        empty = torch.zeros(0, dtype=torch.long, device=layer.device)
        for j in layer.unique().tolist():
            rows = (layer == j).nonzero().squeeze(1)
            sub = dom.take(rows)
            after = self.layers[j].position
            wanted = {}
            for t, nodes in consumers.items():
                if t == self.graph.input_name or self.graph.position(t) <= after:
                    wanted[t] = empty
                    continue
                mask = torch.zeros_like(sub.bounds[t].lower, dtype=torch.bool)
                for node in nodes:
                    mask |= node.op.refine_mask(sub.bounds[t])
                wanted[t] = mask.flatten(1).any(0).nonzero().squeeze(1)
            box = sub.bounds[self.graph.input_name]
            fresh, _ = refine_bounds(self.graph, box, sub.bounds, self.config.max_rows, wanted)
            for t, b in fresh.items():
                dom.bounds[t].lower[rows] = b.lower
                dom.bounds[t].upper[rows] = b.upper

    def _split_inputs(self, parents: Domains, w: Walk) -> Domains:
        target = parents.lower.argmax(1)
        dim = choose_input(parents, self.graph.input_name, w.input_coeffs, target)
        pbox = parents.bounds[self.graph.input_name]
        rows = torch.arange(len(parents), device=dim.device)
        lo_d = pbox.lower.reshape(len(parents), -1)[rows, dim]
        hi_d = pbox.upper.reshape(len(parents), -1)[rows, dim]
        # every dimension this narrow (see choose_input): no longer worth halving in float32
        narrow = (hi_d - lo_d) <= 1e-6 * (1 + torch.maximum(lo_d.abs(), hi_d.abs()))
        if bool(narrow.any()):
            self.stuck += int(narrow.sum())
            self.stuck_regions.update(parents.region[narrow].tolist())
            keep = (~narrow).nonzero().squeeze(1)
            parents, dim = parents.take(keep), dim[keep]
            if not len(parents):
                return parents
        twice = torch.arange(len(parents), device=dim.device).repeat_interleave(2)
        children = parents.take(twice)
        box = children.bounds[self.graph.input_name]
        lo, hi = box.lower.view(len(children), -1), box.upper.view(len(children), -1)
        rows = torch.arange(len(children), device=dim.device)
        dims = dim[twice]
        mid = (lo[rows, dims] + hi[rows, dims]) / 2
        left = rows % 2 == 0
        hi[rows[left], dims[left]] = mid[left]
        lo[rows[~left], dims[~left]] = mid[~left]
        children.depth = children.depth + 1
        with torch.no_grad():
            fresh = interval_bounds(self.graph, box)
            base = {t: _intersect(b, children.bounds[t]) if t != self.graph.input_name else b
                    for t, b in fresh.items()}
            bounds, _ = refine_bounds(self.graph, box, base, self.config.max_rows)
        children.bounds = bounds
        optim = replace(self.config.optim, iterations=self.config.input_split_iterations)
        self._bound(children, optim)
        return children

    # ------------------------------------------------------------------ counterexamples

    def _attack(self, parents: Domains, w: Walk) -> tuple[Counterexample | None, int | None]:
        """Try each subdomain's bound-minimising input (and box centre), then PGD now and
        then; only onnxruntime's confirmation counts."""
        graph = self.graph
        target = parents.lower.argmax(1)
        box = parents.bounds[graph.input_name]
        points = [box.center]
        if w.input_coeffs is not None:
            rows = torch.arange(len(parents), device=target.device)
            coef = w.input_coeffs[rows, target]
            points.append(torch.where(coef > 0, box.lower, box.upper))
        with torch.no_grad():
            for x in points:
                y = graph.forward(x).reshape(len(x), -1)
                value = torch.einsum("bsk,bk->bs", self.C[parents.region], y) + \
                    self.d[parents.region]
                for i in (value <= 0).all(1).nonzero().squeeze(1).tolist():
                    r = int(parents.region[i])
                    flat = x[i].reshape(1, -1).double().cpu().numpy()
                    ce = confirm(self.runner, self.regions[r], flat, graph.input_shape, "bab")
                    if ce is not None:
                        return ce, r
        if self.config.pgd_every <= 0 or (self.batches - 1) % self.config.pgd_every:
            return None, None
        r = int(parents.region[0])  # the lowest bound: the likeliest place to look
        region = self.regions[r]
        if self.mode == "input":  # the sub-box: smaller, so PGD is stronger there
            region = Region(box.lower[0].reshape(-1).double().cpu().numpy(),
                            box.upper[0].reshape(-1).double().cpu().numpy(),
                            region.C, region.d, region.strict)
        found = by_pgd(graph, self.runner, region, self.config.falsify, self.generator)
        if found is None:
            return None, None
        # re-check against the original region (the sub-box is rounded outward)
        ce = confirm(self.runner, self.regions[r], found.x[None].astype(np.float64),
                     graph.input_shape, "bab-pgd")
        return (ce, r) if ce is not None else (None, None)


def _intersect(a: Interval, b: Interval) -> Interval:
    lower = torch.maximum(a.lower, b.lower)
    return Interval(lower, torch.maximum(torch.minimum(a.upper, b.upper), lower))


__all__ = ["BabConfig", "BabResult", "SplitLayer", "branch_and_bound"]
