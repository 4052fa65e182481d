"""Decide a VNN-LIB property on an ONNX model: holds, violated (with a re-checked
counterexample) or unknown (with the reason).

Order: counterexample search (random points, then PGD), then bounds (IBP -> CROWN ->
alpha-CROWN, up to ``method``), then branch and bound (``verifiers.bounds.bab``) on the
regions still open, then Marabou for regions still open on small networks. The property holds
only when every region of the property is proved empty.
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
from verifiers.bounds.complete import marabou_query
from verifiers.bounds.crown import LinearSpec
from verifiers.bounds.engine import BoundConfig, Method, bound_spec
from verifiers.bounds.falsify import (
    Counterexample,
    FalsifyConfig,
    by_pgd,
    by_sampling,
    confirm,
    outward_float32,
)
from verifiers.bounds.graph import BoundGraph, build_graph
from verifiers.bounds.ops import Interval
from verifiers.bounds.vnnlib import Region, parse_vnnlib
from verifiers.errors import DataError, IntakeError
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


@dataclass(frozen=True)
class VerificationResult:
    status: str  # "holds" | "violated" | "unknown"
    counterexample: np.ndarray | None  # input in the model's sample shape
    output: np.ndarray | None  # onnxruntime output at the counterexample
    reason: str
    seconds: float
    decided_by: str = ""  # sampling, pgd, ibp, crown, alpha-crown, bab, bab-pgd, marabou


def verify_vnnlib(model_bytes: bytes, vnnlib_text: str, method: Method | str = Method.ALPHA_CROWN,
                  timeout: float = 60.0, *, config: VerifyConfig = VerifyConfig()
                  ) -> VerificationResult:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout

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
    graph, graph_reason = _graph_for(loaded, prop.regions, config.device)

    rng = np.random.default_rng(config.falsify.seed)
    generator = torch.Generator().manual_seed(config.falsify.seed)
    for region in prop.regions:
        if time.monotonic() > deadline:
            break
        ce = by_sampling(loaded.runner, region, shape, config.falsify, rng)
        if ce is None and graph is not None:
            ce = by_pgd(graph, loaded.runner, region, config.falsify, generator)
        if ce is not None:
            return answer("violated", "", ce.found_by, ce, shape)

    open_regions = list(range(len(prop.regions)))
    reasons: list[str] = [graph_reason] if graph_reason else []
    proved_by: set[str] = set()
    if graph is not None:
        try:
            open_regions = _prove_with_bounds(graph, prop.regions, open_regions, method,
                                              config, deadline, proved_by)
        except RuntimeError as exc:  # out of memory or a torch failure: leave it to Marabou
            reasons.append(f"bounds failed: {str(exc)[:200]}")
    if open_regions and graph is not None and config.bab is not None \
            and time.monotonic() < deadline:
        share = 0.5 if _small_enough(graph, config) else 1.0
        try:
            bab = branch_and_bound(graph, [prop.regions[i] for i in open_regions],
                                   loaded.runner, config.bab,
                                   time.monotonic() + share * (deadline - time.monotonic()))
        except RuntimeError as exc:  # out of memory or a torch failure: leave it to Marabou
            reasons.append(f"branch and bound failed: {str(exc)[:200]}")
        else:
            if bab.status == "violated":
                return answer("violated", "", bab.counterexample.found_by, bab.counterexample,
                              shape)
            if len(bab.open_regions) < len(open_regions):
                proved_by.add("bab")
            open_regions = [open_regions[i] for i in bab.open_regions]
            reasons.append(bab.reason)
    if open_regions and _small_enough(graph, config):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(loaded.proto.SerializeToString())  # the unpacked, checked model
            still = []
            for i in open_regions:
                region = prop.regions[i]
                got = marabou_query(path, region.lower, region.upper, region.C, region.d,
                                    deadline - time.monotonic())
                if got.verdict == "unsat":
                    proved_by.add("marabou")
                    continue
                if got.verdict == "sat":
                    ce = confirm(loaded.runner, region, got.x[None], shape, "marabou")
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
    if not open_regions:
        return answer("holds", "", "+".join(sorted(proved_by)) or "no satisfiable region")
    reasons = list(dict.fromkeys(r for r in reasons if r))
    detail = f"{len(open_regions)} of {len(prop.regions)} regions neither proved nor falsified"
    return answer("unknown", "; ".join([detail, *reasons]))


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


def _prove_with_bounds(graph: BoundGraph, regions: list[Region], todo: list[int],
                       method: Method | str, config: VerifyConfig, deadline: float,
                       proved_by: set[str]) -> list[int]:
    still = []
    dev, dt = graph.device, graph.dtype
    for i in todo:
        region = regions[i]
        if region.C.shape[0] == 0 or time.monotonic() > deadline:
            still.append(i)
            continue
        lo, hi = outward_float32(region.lower, region.upper)
        box = Interval(torch.as_tensor(lo, dtype=dt, device=dev).reshape(1, *graph.input_shape),
                       torch.as_tensor(hi, dtype=dt, device=dev).reshape(1, *graph.input_shape))
        spec = LinearSpec(torch.as_tensor(region.C, dtype=dt, device=dev)[None],
                          torch.as_tensor(region.d, dtype=dt, device=dev)[None])
        result = bound_spec(graph, box, spec, Method(method), config.bounds, require_all=False,
                            deadline=deadline)
        if bool(result.proved[0]):
            proved_by.add(result.proved_by[0])
        else:
            still.append(i)
    return still


def _small_enough(graph: BoundGraph | None, config: VerifyConfig) -> bool:
    if graph is None:  # let Marabou try what the bound engine cannot read (unless disabled)
        return config.marabou_max_neurons > 0
    neurons = sum(math.prod(graph.shape_of(n.inputs[0])) for n in graph.nodes
                  if n.op.needs_bounds)
    return neurons <= config.marabou_max_neurons
