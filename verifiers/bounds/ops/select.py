"""Ops whose every output element is one input element: Slice, Split, Resize (nearest).

The element map is read off the node itself: the ONNX reference runtime runs it on a batch of
two whose values are their own flat indices (float64, exact), so every attribute and opset
variant means what the standard says. The second sample must map onto itself exactly as the
first does (anything else would mix samples, and is refused). Then y = x[idx] is linear:
IBP picks the bounds, the backward step scatter-adds the coefficients back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator
from torch import Tensor

from verifiers.bounds.ops.base import BackwardResult, BoundOp, Interval, NodeSpec, register


class Select(BoundOp):
    def __init__(self, spec: NodeSpec, index: np.ndarray) -> None:
        super().__init__(spec)
        self.in_shape = tuple(spec.shapes[0])
        self.out_shape = tuple(int(d) for d in index.shape)
        self.index = torch.from_numpy(index.reshape(-1).astype(np.int64))
        # Copies of one input element are correlated: only a duplicate-free map keeps a box.
        unique = len(np.unique(index)) == index.size
        self.linear_kind = "elementwise" if unique else None

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        return flat[:, self.index.to(x.device)].reshape(x.shape[0], *self.out_shape)

    def interval(self, x: Interval) -> Interval:
        return Interval(self.forward(x.lower), self.forward(x.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        batch, rows = A.shape[:2]
        a_in = A.new_zeros(batch, rows, math.prod(self.in_shape))
        a_in.index_add_(2, self.index.to(A.device), A.reshape(batch, rows, -1))
        return [a_in.reshape(batch, rows, *self.in_shape)], None

    def to(self, device: torch.device, dtype: torch.dtype) -> BoundOp:
        self.index = self.index.to(device)
        return self


def element_maps(spec: NodeSpec) -> list[np.ndarray]:
    """Per output: the flat input index of each per-sample output element."""
    if not spec.perturbed(0) or any(spec.perturbed(i) for i in range(1, len(spec.consts))):
        raise spec.refuse("only the data input may depend on the input")
    shape = spec.shapes[0]
    numel = math.prod(shape)
    x = np.arange(2 * numel, dtype=np.float64).reshape(2, *shape)
    feeds = {spec.node.input[0]: x}
    for name, const in zip(spec.node.input[1:], spec.consts[1:], strict=False):
        if name:
            feeds[name] = const
    try:
        outs = ReferenceEvaluator(spec.node, opsets={"": spec.opset}).run(None, feeds)
    except Exception as exc:  # the reference runtime raises anything on a malformed node
        raise spec.refuse(f"cannot evaluate the node: {type(exc).__name__}: {exc}") from exc
    maps = []
    for out in outs:
        out = np.asarray(out)
        if out.ndim == 0 or out.shape[0] != 2 or out.size == 0:
            raise spec.refuse(f"output shape {out.shape} for a batch of two mixes samples "
                              "or is empty")
        first, second = out[0], out[1]
        if not (np.all(first >= 0) and np.all(first < numel)
                and np.array_equal(second, first + numel)):
            raise spec.refuse("the output mixes the samples of a batch")
        maps.append(first.astype(np.int64))
    return maps


@register("Slice")
def build_slice(spec: NodeSpec) -> BoundOp:
    return Select(spec, element_maps(spec)[0])


@register("Split")
def build_split(spec: NodeSpec) -> list[BoundOp]:
    return [Select(spec, index) for index in element_maps(spec)]


@register("Resize", "Upsample")
def build_resize(spec: NodeSpec) -> BoundOp:
    mode = spec.attr("mode", "nearest")
    if mode != "nearest":
        raise spec.refuse(f"mode {mode!r} (only 'nearest' is relaxed)")
    return Select(spec, element_maps(spec)[0])
