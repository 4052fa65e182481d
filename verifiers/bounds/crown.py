"""CROWN: backward linear bound propagation (Zhang et al. 2018; Xu et al. 2020 for graphs).

A lower bound of ``A . t`` for a tensor ``t`` is found by walking the graph backwards from
``t``: every op replaces the coefficients of its output by coefficients of its inputs plus a
bias (its relaxation), until only the model input remains, where the box is used exactly.

Intermediate bounds: each op that relaxes (ReLU, Sigmoid, MaxPool...) needs bounds of its
input. They start as IBP bounds and are tightened by a backward pass from that tensor, only
for the neurons that matter (unstable ReLUs), and not where IBP is already exact. Lower and
upper bounds of those neurons are the rows of one pass (upper = -lower of the negation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiers.bounds.graph import BoundGraph, GraphNode
from verifiers.bounds.ops import Interval
from verifiers.bounds.passes import record
from verifiers.interrupt import checkpoint

# start tensor -> (activation output tensor -> its lower slopes for passes from that tensor);
# keyed by tensor names, which ONNX keeps unique (node names may repeat or be empty)
AlphaSet = Mapping[str, Mapping[str, Tensor]]


@dataclass(frozen=True)
class LinearSpec:
    """Wanted: lower bounds of ``C y + d`` for the (flattened) model output ``y``.

    ``C`` is [B, S, K] and ``d`` is [B, S]: S linear functions per sample.
    """

    C: Tensor
    d: Tensor

    def select(self, idx: Tensor) -> LinearSpec:
        return LinearSpec(self.C[idx], self.d[idx])


def concretize(A: Tensor, box: Interval) -> Tensor:
    """min over the box of A . x, shape [B, S]."""
    center = box.center.unsqueeze(1)
    radius = box.radius.unsqueeze(1)
    return (A * center).flatten(2).sum(-1) - (A.abs() * radius).flatten(2).sum(-1)


def backward_step(node: GraphNode, A: Tensor, bounds: Mapping[str, Interval],
                  alphas: Mapping[str, Tensor] | None, coeffs: dict[str, Tensor]
                  ) -> Tensor | None:
    """One node of a backward pass: its relaxation maps ``A`` (the coefficients on its output)
    to its inputs, added into ``coeffs``; returns the bias term it adds (or None)."""
    ins = [bounds[i] if node.op.needs_bounds else None for i in node.inputs]
    alpha = alphas.get(node.output) if alphas else None
    a_ins, b = node.op.backward(A, ins, alpha)
    for name, a in zip(node.inputs, a_ins, strict=True):
        if a is not None:
            coeffs[name] = coeffs[name] + a if name in coeffs else a
    return b


def backward_lower(graph: BoundGraph, start: str, A0: Tensor, bounds: Mapping[str, Interval],
                   box: Interval, alphas: Mapping[str, Tensor] | None = None) -> Tensor:
    """Lower bound of ``A0 . start`` ([B, S]) over the box, given intermediate bounds."""
    coeffs: dict[str, Tensor] = {start: A0}
    bias = torch.zeros(A0.shape[:2], dtype=A0.dtype, device=A0.device)
    for node in reversed(graph.nodes[:graph.position(start) + 1]):
        A = coeffs.pop(node.output, None)
        if A is None:
            continue
        checkpoint()  # one op's backward step is the longest stretch between two checks
        b = backward_step(node, A, bounds, alphas, coeffs)
        if b is not None:
            bias = bias + b
    A = coeffs.get(graph.input_name)
    return bias if A is None else bias + concretize(A, box)


def interval_spec_lower(spec: LinearSpec, out: Interval) -> Tensor:
    """IBP bound of the spec from output bounds."""
    lo, up = out.lower.flatten(1).unsqueeze(1), out.upper.flatten(1).unsqueeze(1)
    return (spec.C.clamp(min=0) * lo + spec.C.clamp(max=0) * up).sum(-1) + spec.d


def spec_lower(graph: BoundGraph, box: Interval, spec: LinearSpec,
               bounds: Mapping[str, Interval], alphas: Mapping[str, Tensor] | None = None
               ) -> Tensor:
    batch, rows = spec.C.shape[:2]
    A0 = spec.C.reshape(batch, rows, *graph.output_shape)
    return backward_lower(graph, graph.output, A0, bounds, box, alphas) + spec.d


def refine_bounds(graph: BoundGraph, box: Interval, base: Mapping[str, Interval],
                  max_rows: int, rows: Mapping[str, Tensor] | None = None,
                  alphas: AlphaSet | None = None) -> tuple[dict[str, Interval], dict[str, Tensor]]:
    """Tighten the bounds the relaxations need, in topological order.

    ``rows`` (flat neuron indices per tensor) fixes which neurons to refine; when None they
    are chosen from the current bounds (any sample of the batch needing it) and returned.
    The result is intersected with ``base``, so it is never looser. Interval bounds are
    re-propagated from the refined ones as the walk goes (also intersected), so later
    tensors start from the tightened boxes: on deep nets (ResNet-18) the plain IBP boxes
    blow up and would mark nearly every later ReLU as unstable.
    """
    record("intermediate" if alphas is None else "alpha-intermediate")
    bounds = dict(base)
    chosen: dict[str, Tensor] = {}
    consumers = graph.bounded_tensors()
    for node in graph.nodes:
        t = node.output
        if t in graph.exact_ibp:
            continue
        fresh = node.op.interval(*(bounds[i] for i in node.inputs))
        bounds[t] = _intersect(bounds[t], fresh)
        if t not in consumers:
            continue
        if rows is None:
            mask = torch.zeros_like(bounds[t].lower, dtype=torch.bool)
            for consumer in consumers[t]:
                mask |= consumer.op.refine_mask(bounds[t])
            idx = mask.flatten(1).any(0).nonzero().squeeze(1)
        else:
            idx = rows[t]
        chosen[t] = idx
        if idx.numel():
            lo, up = _rows_bounds(graph, t, idx, bounds, box, max_rows,
                                  alphas.get(t) if alphas else None)
            bounds[t] = _merge(bounds[t], idx, lo, up)
    return bounds, chosen


def _rows_bounds(graph: BoundGraph, t: str, idx: Tensor, bounds: Mapping[str, Interval],
                 box: Interval, max_rows: int, alphas: Mapping[str, Tensor] | None
                 ) -> tuple[Tensor, Tensor]:
    ref = bounds[t].lower
    batch, shape = ref.shape[0], ref.shape[1:]
    numel = ref[0].numel()
    step = max(1, max_rows // (2 * batch))
    lows, ups = [], []
    for chunk in torch.split(idx, step):
        m = len(chunk)
        A0 = torch.zeros(batch, 2 * m, numel, dtype=ref.dtype, device=ref.device)
        rows = torch.arange(m, device=ref.device)
        A0[:, rows, chunk] = 1.0
        A0[:, rows + m, chunk] = -1.0
        res = backward_lower(graph, t, A0.reshape(batch, 2 * m, *shape), bounds, box, alphas)
        lows.append(res[:, :m])
        ups.append(-res[:, m:])
    return torch.cat(lows, 1), torch.cat(ups, 1)


def _intersect(old: Interval, new: Interval) -> Interval:
    lower = torch.maximum(old.lower, new.lower)
    return Interval(lower, torch.maximum(torch.minimum(old.upper, new.upper), lower))


def _merge(old: Interval, idx: Tensor, lo: Tensor, up: Tensor) -> Interval:
    lower, upper = old.lower.flatten(1).clone(), old.upper.flatten(1).clone()
    lower[:, idx] = torch.maximum(lower[:, idx], lo)
    upper[:, idx] = torch.minimum(upper[:, idx], up)
    # Float rounding may cross the two by an ulp where the bound is tight: keep them ordered.
    upper[:, idx] = torch.maximum(upper[:, idx], lower[:, idx])
    return Interval(lower.view_as(old.lower), upper.view_as(old.upper))
