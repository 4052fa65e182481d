"""Linear reductions: ReduceSum, ReduceMean and GlobalAveragePool (a mean over the spatial
axes, what torchvision's AdaptiveAvgPool2d(1) exports to). y = scale * sum over the reduced
per-sample axes; the backward step copies each coefficient back over its reduced axes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from verifiers.bounds.ops.base import BackwardResult, BoundOp, Interval, NodeSpec, register


class LinearReduce(BoundOp):
    linear_kind = "mixing"

    def __init__(self, spec: NodeSpec, axes: tuple[int, ...], keepdims: bool,
                 mean: bool) -> None:
        super().__init__(spec)
        self.in_shape = tuple(spec.shapes[0])
        self.axes = axes  # per-sample axes, sorted
        self.keepdims = keepdims
        self.scale = 1.0 / math.prod(self.in_shape[a] for a in axes) if mean else 1.0

    def _reduce(self, x: Tensor) -> Tensor:
        dims = tuple(a + 1 for a in self.axes)
        return x.sum(dim=dims, keepdim=self.keepdims) * self.scale if dims else x * 1.0

    def forward(self, x: Tensor) -> Tensor:
        return self._reduce(x)

    def interval(self, x: Interval) -> Interval:
        center, radius = self._reduce(x.center), self._reduce(x.radius)
        return Interval(center - radius, center + radius)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        if not self.keepdims:
            for a in self.axes:  # sorted: each unsqueeze restores one reduced axis
                A = A.unsqueeze(a + 2)
        return [(A * self.scale).expand(*A.shape[:2], *self.in_shape)], None


def _axes(spec: NodeSpec) -> list[int] | None:
    """The reduced axes over the full (batched) rank, None for 'all axes'."""
    if spec.node.op_type == "GlobalAveragePool":
        return list(range(2, len(spec.shapes[0]) + 1))
    axes = spec.attr("axes")
    if len(spec.node.input) > 1 and spec.node.input[1]:  # ReduceSum >= 13, ReduceMean >= 18
        axes = spec.const(1)
    if axes is None or len(axes) == 0:
        return None
    return [int(a) for a in axes]


@register("ReduceMean", "ReduceSum", "GlobalAveragePool")
def build_reduce(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0):
        raise spec.refuse("only the data input may depend on the input")
    rank = len(spec.shapes[0]) + 1
    axes = _axes(spec)
    keepdims = spec.node.op_type == "GlobalAveragePool" or bool(spec.attr("keepdims", 1))
    if axes is None:
        if spec.attr("noop_with_empty_axes", 0):
            return LinearReduce(spec, (), True, False)
        raise spec.refuse("reducing every axis would sum over the batch")
    axes = sorted({a % rank for a in axes})
    if axes[0] == 0:
        raise spec.refuse("reduction over the batch dimension")
    return LinearReduce(spec, tuple(a - 1 for a in axes), keepdims,
                        spec.node.op_type != "ReduceSum")
