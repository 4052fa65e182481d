"""Decide a VNN-LIB property on an ONNX model: holds, violated (with a re-checked
counterexample) or unknown (with the reason), within ``timeout`` seconds.

Order: a quick counterexample search (random points, a short PGD) on a bounded share of the
budget, then bounds (IBP -> CROWN -> alpha-CROWN, up to ``method``), then branch and bound
(``verifiers.bounds.bab``: beta-CROWN splits with PGD interleaved) on the regions still open,
then the full PGD on what is left, then Marabou for those on small networks. Regions that
share an input box (the disjuncts of a robustness property) are attacked and bounded together:
one intermediate-bound pass per box, their constraints as rows of one spec. The property holds
only when every region is proved empty.

The timeout is a promise: every long loop (PGD steps, bound passes, alpha-CROWN iterations) meets
an interrupt checkpoint and Marabou runs in a child process killed at the deadline; out of time
the answer is 'unknown' with the reason "timeout after T s".
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from verifiers.bounds.bab import BabConfig, branch_and_bound
from verifiers.bounds.complete import marabou_queries
from verifiers.bounds.crown import LinearSpec
from verifiers.bounds.engine import BoundConfig, Method, bound_spec
from verifiers.bounds.falsify import (
    Counterexample,
    FalsifyConfig,
    by_pgd_group,
    by_sampling_group,
    confirm,
    outward_float32,
)
from verifiers.bounds.graph import BoundGraph, build_graph
from verifiers.bounds.ops import Interval
from verifiers.bounds.vnnlib import Region, parse_vnnlib
from verifiers.errors import DataError, IntakeError, OutOfTime
from verifiers.interrupt import Budget, checkpoint, time_budget
from verifiers.model import LoadedModel, load_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyConfig:
    bounds: BoundConfig = field(default_factory=BoundConfig)
    falsify: FalsifyConfig = field(default_factory=FalsifyConfig)
    marabou_max_neurons: int = 2000  # activation neurons; larger networks skip Marabou (0: off)
    # branch and bound on regions the bounds leave open (None: off); it gets the whole
    # remaining time, or half of it when Marabou can run after it
    bab: BabConfig | None = field(default_factory=BabConfig)
    device: str = "cpu"
    # Soft stops, as shares of the time left when the phase starts (the deadline is hard):
    bounds_share: float = 0.6  # alpha-CROWN stops iterating past this share
    bab_share: float = 0.5     # branch and bound after the bounds when Marabou can follow
    attack_share: float = 0.5  # the full PGD after the bounds; Marabou gets the rest


@dataclass(frozen=True)
class VerificationResult:
    status: str  # "holds" | "violated" | "unknown"
    counterexample: np.ndarray | None  # input in the model's sample shape
    output: np.ndarray | None  # onnxruntime output at the counterexample
    reason: str
    seconds: float
    decided_by: str = ""  # sampling, pgd, ibp, crown, alpha-crown, bab, bab-pgd, marabou


def verify_vnnlib(model_bytes: bytes, vnnlib_text: str, method: Method | str = Method.ALPHA_CROWN,
                  timeout: float = 60.0, *, config: VerifyConfig = VerifyConfig(),
                  started: float | None = None) -> VerificationResult:
    """``started`` (a ``time.monotonic()`` reading, default now) is when the timeout began:
    a caller that already spent time on the request (reading uploads, start-up) passes it."""
    t0 = time.perf_counter()
    spent = 0.0 if started is None else max(0.0, time.monotonic() - started)
    progress: list[str] = []  # what an answer cut short by the deadline can still say
    with time_budget(timeout - spent, f"timeout after {timeout:g} s") as budget:
        try:
            return _decide(model_bytes, vnnlib_text, Method(method), config, budget, t0,
                           progress)
        except OutOfTime as exc:
            if not budget.owns(exc):
                raise
            return VerificationResult("unknown", None, None, "; ".join([str(exc), *progress]),
                                      time.perf_counter() - t0)


def _decide(model_bytes: bytes, vnnlib_text: str, method: Method, config: VerifyConfig,
            budget: Budget, t0: float, progress: list[str]) -> VerificationResult:
    def answer(status: str, reason: str, by: str = "", ce: Counterexample | None = None,
               shape: tuple[int, ...] = ()) -> VerificationResult:
        x = None if ce is None else ce.x.reshape(shape)
        return VerificationResult(status, x, None if ce is None else ce.y, reason,
                                  time.perf_counter() - t0, by)

    try:
        prop = parse_vnnlib(vnnlib_text)
        loaded = load_model(model_bytes)
    except (DataError, IntakeError) as exc:
        return answer("unknown", str(exc))
    shape = tuple(int(d) for d in loaded.info.input_shape[1:])
    if math.prod(shape) != prop.num_inputs or loaded.num_classes != prop.num_outputs:
        return answer("unknown", f"property has {prop.num_inputs} inputs/{prop.num_outputs} "
                      f"outputs, the model {math.prod(shape)}/{loaded.num_classes}")
    checkpoint()
    graph, graph_reason = _graph_for(loaded, prop.regions, config.device)
    checkpoint()
    regions, boxes = prop.regions, group_by_box(prop.regions)

    attack = _Attack(loaded, graph, regions, shape, config.falsify)
    quick_end = budget.at(config.falsify.quick_share)
    for group in boxes:
        if time.monotonic() > quick_end:  # many boxes (e.g. nn4sys): the bounds come first
            break
        ce = attack.quick(group, quick_end)
        if ce is not None:
            return answer("violated", "", ce.found_by, ce, shape)

    open_regions = list(range(len(regions)))
    reasons: list[str] = [graph_reason] if graph_reason else []
    proved_by: set[str] = set()
    if graph is not None:
        try:
            open_regions = _prove_with_bounds(graph, regions, boxes, method, config,
                                              budget.at(config.bounds_share), proved_by)
        except RuntimeError as exc:  # out of memory or a torch failure: leave it to Marabou
            reasons.append(f"bounds failed: {str(exc)[:200]}")

    progress.append(f"{len(open_regions)} of {len(regions)} regions left open by the bounds")
    marabou_next = _small_enough(graph, config)

    def bab_round(todo: list[int], end: float) -> tuple[VerificationResult | None, list[int]]:
        """Branch and bound on ``todo`` until ``end``: (a 'violated' answer, still open)."""
        try:
            bab = branch_and_bound(graph, [regions[i] for i in todo], loaded.runner,
                                   config.bab, end)
        except RuntimeError as exc:  # out of memory or a torch failure: leave it to Marabou
            reasons.append(f"branch and bound failed: {str(exc)[:200]}")
            return None, todo
        if bab.status == "violated":
            return answer("violated", "", bab.counterexample.found_by, bab.counterexample,
                          shape), todo
        if len(bab.open_regions) < len(todo):
            proved_by.add("bab")
        reasons.append(bab.reason)
        return None, [todo[i] for i in bab.open_regions]

    if open_regions and graph is not None and config.bab is not None:
        # BaB interleaves its own PGD; it leaves time for the full PGD and, on networks small
        # enough, for Marabou
        found, open_regions = bab_round(
            open_regions, budget.at(config.bab_share if marabou_next else 0.9))
        if found is not None:
            return found
        progress.append(f"{len(open_regions)} left open by branch and bound")
    attack_end = budget.at(config.attack_share if marabou_next else 1.0)
    for group in _still_open(boxes, open_regions):
        ce = attack.full(group, attack_end)
        if ce is not None:
            return answer("violated", "", ce.found_by, ce, shape)

    if open_regions and _small_enough(graph, config):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(loaded.proto.SerializeToString())  # the unpacked, checked model
            queries = [(regions[i].lower, regions[i].upper, regions[i].C, regions[i].d)
                       for i in open_regions]
            got_all = marabou_queries(path, queries, budget.left())
        still = []
        for i, got in zip(open_regions, got_all, strict=True):
            if got.verdict == "unsat":
                proved_by.add("marabou")
                continue
            if got.verdict == "sat":
                ce = confirm(loaded.runner, regions[i], got.x[None], shape, "marabou")
                if ce is not None:
                    return answer("violated", "", "marabou", ce, shape)
                reasons.append("Marabou's candidate not confirmed on onnxruntime")
            else:
                reasons.append(got.reason)
            still.append(i)
        open_regions = still
    elif open_regions:
        reasons.append("complete tier skipped: more activation neurons than "
                       f"marabou_max_neurons={config.marabou_max_neurons}")
    if open_regions and graph is not None and config.bab is not None \
            and budget.left() > _LAST_ROUND_S:
        # Marabou answered early (an error, a quick "unknown"): the rest of the budget goes
        # back to branch and bound rather than unused
        found, open_regions = bab_round(open_regions, budget.deadline - _ANSWER_MARGIN_S)
        if found is not None:
            return found
    if not open_regions:
        return answer("holds", "", "+".join(sorted(proved_by)) or "no satisfiable region")
    if budget.left() <= 0:
        reasons.insert(0, budget.reason)
    reasons = list(dict.fromkeys(r for r in reasons if r))
    detail = f"{len(open_regions)} of {len(regions)} regions neither proved nor falsified"
    return answer("unknown", "; ".join([detail, *reasons]))


# A last branch-and-bound round runs when this much of the budget is left after Marabou; it
# stops this long before the deadline, to answer in time.
_LAST_ROUND_S = 1.0
_ANSWER_MARGIN_S = 0.2


def group_by_box(regions: list[Region]) -> list[list[int]]:
    """Indices of regions with the same input box, in order of first appearance."""
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for i, r in enumerate(regions):
        groups.setdefault((r.lower.tobytes(), r.upper.tobytes()), []).append(i)
    return list(groups.values())


def _still_open(boxes: list[list[int]], open_regions: list[int]) -> list[list[int]]:
    keep = set(open_regions)
    return [g for g in ([i for i in box if i in keep] for box in boxes) if g]


class _Attack:
    """Counterexample search over one box's regions: seeded, re-checked on onnxruntime."""

    def __init__(self, loaded: LoadedModel, graph: BoundGraph | None, regions: list[Region],
                 shape: tuple[int, ...], config: FalsifyConfig) -> None:
        self.loaded, self.graph, self.regions = loaded, graph, regions
        self.shape, self.config = shape, config
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)

    def quick(self, group: list[int], deadline: float) -> Counterexample | None:
        regions = [self.regions[i] for i in group]
        ce = by_sampling_group(self.loaded.runner, regions, self.shape, self.config, self.rng)
        if ce is None and self.graph is not None:
            ce = by_pgd_group(self.graph, self.loaded.runner, regions, self.config,
                              self.generator, steps=self.config.quick_steps,
                              restarts=self.config.quick_restarts, deadline=deadline)
        return ce

    def full(self, group: list[int], deadline: float) -> Counterexample | None:
        if self.graph is None:
            return None
        return by_pgd_group(self.graph, self.loaded.runner, [self.regions[i] for i in group],
                            self.config, self.generator, deadline=deadline)


def _graph_for(loaded: LoadedModel, regions: list[Region],
               device: str) -> tuple[BoundGraph | None, str]:
    try:
        graph = build_graph(loaded.proto).to(device)
    except IntakeError as exc:  # UnsupportedOpError included
        return None, f"not certifiable by bounds: {exc}"
    if graph.stripped_head and not all(_comparisons_only(r) for r in regions):
        return None, (f"constraints on the {graph.stripped_head} output are not order "
                      "comparisons; bounds are on the logits")
    return graph, ""


def _comparisons_only(region: Region) -> bool:
    """y_i - y_j style rows with no constant: their sign survives a softmax."""
    for row, const in zip(region.C, region.d, strict=True):
        nz = np.flatnonzero(row)
        if const != 0 or len(nz) != 2 or row[nz[0]] != -row[nz[1]]:
            return False
    return True


def _prove_with_bounds(graph: BoundGraph, regions: list[Region], boxes: list[list[int]],
                       method: Method, config: VerifyConfig, deadline: float,
                       proved_by: set[str]) -> list[int]:
    """Regions left open. Each box is one sample of the engine and its regions' constraints
    the rows of one spec (``clauses`` maps rows to regions): one intermediate pass per box."""
    still = []
    dev, dt = graph.device, graph.dtype
    stages = list(Method)
    for box_regions in boxes:
        todo = [i for i in box_regions if regions[i].C.shape[0]]
        still += [i for i in box_regions if not regions[i].C.shape[0]]
        if not todo:
            continue
        first = regions[todo[0]]
        lo, hi = outward_float32(first.lower, first.upper)
        box = Interval(torch.as_tensor(lo, dtype=dt, device=dev).reshape(1, *graph.input_shape),
                       torch.as_tensor(hi, dtype=dt, device=dev).reshape(1, *graph.input_shape))
        C = np.concatenate([regions[i].C for i in todo])
        d = np.concatenate([regions[i].d for i in todo])
        owner = np.repeat(np.arange(len(todo)), [len(regions[i].C) for i in todo])
        spec = LinearSpec(torch.as_tensor(C, dtype=dt, device=dev)[None],
                          torch.as_tensor(d, dtype=dt, device=dev)[None])
        result = bound_spec(graph, box, spec, method, config.bounds, deadline=deadline,
                            clauses=torch.as_tensor(owner, device=dev))
        positive = (result.lower[0] > 0).cpu().numpy()
        stage = result.row_stage[0].cpu().numpy()
        for k, i in enumerate(todo):
            rows = (owner == k) & positive
            if rows.any():
                proved_by.add(stages[int(stage[rows].min())].value)
            else:
                still.append(i)
    return sorted(still)


def _small_enough(graph: BoundGraph | None, config: VerifyConfig) -> bool:
    if graph is None:  # let Marabou try what the bound engine cannot read (unless disabled)
        return config.marabou_max_neurons > 0
    neurons = sum(math.prod(graph.shape_of(n.inputs[0])) for n in graph.nodes
                  if n.op.needs_bounds)
    return neurons <= config.marabou_max_neurons
