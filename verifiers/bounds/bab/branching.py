"""Where to split a subdomain: a ReLU neuron (BaBSR scores, filtered smart branching) or an
input dimension.

ReLU scores (Bunel et al. 2020, BaBSR; De Palma et al. 2021, FSB), from the coefficients
``lam`` of the bound at a ReLU's output and its input bounds ``[l, u]``:

- intercept: ``max(-lam, 0) * (-l u / (u - l))``, what the upper line's intercept costs the
  bound (the term BaBSR scores, without the bias term it reads from a preceding layer);
- area: ``|lam| * (-l u / (u - l))``, which also credits neurons bounded by the lower line.

FSB shortlists the top ``k`` neurons of each score and bounds both children of every
candidate with one batched backward pass (intermediate bounds unchanged); the candidate whose
worse child is best wins. Input splitting halves the dimension with the largest
``|coefficient| * width``, the share of the bound's gap that dimension causes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiers.bounds.bab.beta import walk
from verifiers.bounds.bab.domains import Domains
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops import BoundOp
from verifiers.bounds.ops.activation import LeakyRelu


@dataclass(frozen=True)
class SplitLayer:
    z: str  # the ReLU's input (pre-activation), whose sign a split fixes
    out: str  # the ReLU's output
    op: BoundOp
    position: int  # index of the node producing z
    size: int


def split_layers(graph: BoundGraph) -> list[SplitLayer]:
    """ReLU / LeakyReLU nodes whose input is computed (a ReLU on the raw input is an input
    split, not a neuron split)."""
    layers, seen = [], set()
    for node in graph.nodes:
        z = node.inputs[0]
        if isinstance(node.op, LeakyRelu) and z != graph.input_name and z not in seen:
            seen.add(z)
            layers.append(SplitLayer(z, node.output, node.op, graph.position(z),
                                     math.prod(graph.shape_of(z))))
    return layers


def apply_splits(dom: Domains, layers: list[SplitLayer], layer: Tensor, neuron: Tensor,
                 phase: Tensor) -> None:
    """Fix neuron ``neuron[i]`` of ``layers[layer[i]]`` in subdomain i to ``phase[i]``
    (+1: z >= 0, -1: z <= 0), in place: signs, clamped bounds of z, exact bounds of its ReLU."""
    for j, L in enumerate(layers):
        rows = (layer == j).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        n, ph = neuron[rows], phase[rows]
        zb, ob = dom.bounds[L.z], dom.bounds[L.out]
        zl, zu = zb.lower.view(len(dom), -1), zb.upper.view(len(dom), -1)
        lo = torch.where(ph > 0, zl[rows, n].clamp(min=0), zl[rows, n])
        up = torch.where(ph < 0, zu[rows, n].clamp(max=0), zu[rows, n])
        zl[rows, n], zu[rows, n] = lo, up
        dom.signs[L.z].view(len(dom), -1)[rows, n] = ph.to(torch.int8)
        ol, ou = ob.lower.view(len(dom), -1), ob.upper.view(len(dom), -1)
        fn = L.op.forward
        ol[rows, n] = torch.maximum(ol[rows, n], fn(lo))
        ou[rows, n] = torch.maximum(torch.minimum(ou[rows, n], fn(up)), ol[rows, n])


def relu_scores(dom: Domains, layers: list[SplitLayer], coeffs: dict[str, Tensor],
                target: Tensor) -> tuple[Tensor, Tensor]:
    """(intercept, area) scores [B, total neurons], -inf where a neuron cannot be split."""
    rows = torch.arange(len(dom), device=target.device)
    first, second = [], []
    for L in layers:
        lam = coeffs[L.out][rows, target].reshape(len(dom), -1)
        lo = dom.bounds[L.z].lower.reshape(len(dom), -1)
        up = dom.bounds[L.z].upper.reshape(len(dom), -1)
        open_ = (lo < 0) & (up > 0) & (dom.signs[L.z].reshape(len(dom), -1) == 0)
        gap = torch.where(open_, -lo * up / (up - lo).clamp(min=1e-12), torch.zeros_like(lo))
        ninf = torch.full_like(lo, -math.inf)
        first.append(torch.where(open_, (-lam).clamp(min=0) * gap, ninf))
        second.append(torch.where(open_, lam.abs() * gap, ninf))
    return torch.cat(first, 1), torch.cat(second, 1)


def locate(layers: list[SplitLayer], flat: Tensor) -> tuple[Tensor, Tensor]:
    """Flat neuron index over all split layers -> (layer index, neuron index in it)."""
    sizes = torch.tensor([L.size for L in layers], device=flat.device)
    ends = sizes.cumsum(0)
    layer = torch.searchsorted(ends, flat.contiguous(), right=True)
    return layer, flat - (ends - sizes)[layer]


def choose_relu(graph: BoundGraph, dom: Domains, layers: list[SplitLayer],
                coeffs: dict[str, Tensor], target: Tensor, C: Tensor, d: Tensor,
                method: str, candidates: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per subdomain: (layer, neuron, ok); ok is False where no neuron is left to split."""
    s1, s2 = relu_scores(dom, layers, coeffs, target)
    ok = torch.isfinite(s2).any(1)
    if method == "babsr":
        pick = torch.where(s1.max(1).values > 0, s1.argmax(1), s2.argmax(1))
        layer, neuron = locate(layers, pick)
        return layer, neuron, ok
    k = min(candidates, s1.shape[1])
    cand = torch.cat([s1.topk(k, 1).indices, s2.topk(k, 1).indices], 1)  # [B, 2k]
    valid = torch.isfinite(torch.gather(s2, 1, cand))
    batch, width = cand.shape
    rows = C.shape[1]
    twice = torch.arange(batch, device=cand.device).repeat_interleave(2)
    phase = torch.tensor([1, -1], device=cand.device).repeat(batch)
    A0 = C[twice].reshape(2 * batch, rows, *graph.output_shape)
    worst = torch.full((batch, width), -math.inf, dtype=C.dtype, device=C.device)
    # one candidate column at a time: 2B copies of the bounds, not 2B x 2k
    for c in range(width):
        layer, neuron = locate(layers, cand[:, c])
        trial = dom.take(twice)
        apply_splits(trial, layers, layer[twice], neuron[twice], phase)
        lagrange = {t: trial.betas[t] * trial.signs[t].to(trial.betas[t].dtype).unsqueeze(1)
                    for t in trial.betas}
        with torch.no_grad():
            lower = walk(graph, trial.bounds, A0, trial.alphas, lagrange).lower + d[twice]
        worst[:, c] = lower.max(1).values.reshape(batch, 2).min(1).values
    worst = torch.where(valid, worst, torch.full_like(worst, -math.inf))
    best = worst.argmax(1)
    pick = torch.gather(cand, 1, best[:, None]).squeeze(1)
    layer, neuron = locate(layers, pick)
    return layer, neuron, ok


def choose_input(dom: Domains, input_name: str, input_coeffs: Tensor | None,
                 target: Tensor) -> Tensor:
    """Per subdomain: the flat input dimension to halve."""
    box = dom.bounds[input_name]
    lo, up = box.lower.reshape(len(dom), -1), box.upper.reshape(len(dom), -1)
    width = up - lo
    narrow = width <= 1e-6 * (1 + torch.maximum(lo.abs(), up.abs()))
    if input_coeffs is None:
        score = width
    else:
        rows = torch.arange(len(dom), device=target.device)
        grad = input_coeffs[rows, target].reshape(len(dom), -1).abs()
        # the width term breaks ties (and picks a dimension where the bound ignores the input)
        score = grad * width + 1e-9 * width
    return torch.where(narrow, torch.full_like(score, -1.0), score).argmax(1)
