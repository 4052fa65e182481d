"""Elementwise affine maps (y = x * w + b: Add/Sub/Mul/Div by constants, Neg, inference
BatchNormalization) and the sum or difference of two input-dependent tensors (residuals)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from verifiers.bounds.ops.base import (
    BackwardResult,
    BoundOp,
    Interval,
    NodeSpec,
    as_tensor,
    bias_term,
    per_sample_const,
    register,
    unbroadcast,
)


class ElementwiseAffine(BoundOp):
    """y = x * w + b with w and b broadcast against x (either may be None)."""

    linear_kind = "elementwise"

    def __init__(self, spec: NodeSpec, w: Tensor | None, b: Tensor | None) -> None:
        super().__init__(spec)
        self.w, self.b = w, b
        self.in_shape = tuple(spec.shapes[spec.perturbed_slots()[0]])
        shapes = [t.shape for t in (w, b) if t is not None]
        if tuple(torch.broadcast_shapes(self.in_shape, *shapes)) != self.in_shape:
            self.linear_kind = None  # copies of one input are correlated: no longer a box

    def forward(self, x: Tensor) -> Tensor:
        y = x if self.w is None else x * self.w
        return y if self.b is None else y + self.b

    def interval(self, x: Interval) -> Interval:
        center = self.forward(x.center)
        radius = x.radius if self.w is None else x.radius * self.w.abs()
        radius = radius.expand_as(center)
        return Interval(center - radius, center + radius)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        bias = None if self.b is None else bias_term(A, self.b)
        a_in = A if self.w is None else A * self.w
        return [unbroadcast(a_in, self.in_shape)], bias


class SumOfTwo(BoundOp):
    """y = x1 + sign * x2 for two input-dependent tensors (sign = -1 for Sub)."""

    def __init__(self, spec: NodeSpec, sign: float) -> None:
        super().__init__(spec)
        self.sign = sign
        self.shapes = (tuple(spec.shapes[0]), tuple(spec.shapes[1]))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return a + self.sign * b

    def interval(self, a: Interval, b: Interval) -> Interval:
        if self.sign > 0:
            return Interval(a.lower + b.lower, a.upper + b.upper)
        return Interval(a.lower - b.upper, a.upper - b.lower)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        return [unbroadcast(A, self.shapes[0]), unbroadcast(self.sign * A, self.shapes[1])], None


def _rank(spec: NodeSpec) -> int:
    return len(spec.shapes[spec.perturbed_slots()[0]])


@register("Add", "Sub")
def build_add_sub(spec: NodeSpec) -> BoundOp:
    sign = -1.0 if spec.node.op_type == "Sub" else 1.0
    slots = spec.perturbed_slots()
    if len(slots) == 2:
        return SumOfTwo(spec, sign)
    const = per_sample_const(spec, spec.consts[1 - slots[0]], _rank(spec))
    if slots[0] == 0:  # x + c or x - c
        return ElementwiseAffine(spec, None, sign * const)
    # c + x or c - x
    return ElementwiseAffine(spec, None if sign > 0 else torch.tensor(-1.0), const)


@register("Mul", "Div")
def build_mul_div(spec: NodeSpec) -> BoundOp:
    slots = spec.perturbed_slots()
    if len(slots) == 2:
        raise spec.refuse("product of two input-dependent tensors is not linear")
    if spec.node.op_type == "Div" and slots[0] == 1:
        raise spec.refuse("division by an input-dependent tensor")
    value = np.asarray(spec.consts[1 - slots[0]], dtype=np.float64)
    if spec.node.op_type == "Div":
        if np.any(value == 0):
            raise spec.refuse("division by zero")
        value = 1.0 / value
    return ElementwiseAffine(spec, per_sample_const(spec, value, _rank(spec)), None)


@register("Neg")
def build_neg(spec: NodeSpec) -> BoundOp:
    return ElementwiseAffine(spec, torch.tensor(-1.0), None)


@register("BatchNormalization")
def build_batch_norm(spec: NodeSpec) -> BoundOp:
    if spec.attr("training_mode", 0):
        raise spec.refuse("training_mode=1 (batch statistics)")
    if not spec.perturbed(0):
        raise spec.refuse("only the data input may depend on the input")
    scale, shift, mean, var = (np.asarray(spec.const(i), dtype=np.float64) for i in range(1, 5))
    w = scale / np.sqrt(var + float(spec.attr("epsilon", 1e-5)))
    b = shift - mean * w
    spatial = len(spec.shapes[0]) - 1
    shape = (-1,) + (1,) * spatial
    return ElementwiseAffine(spec, as_tensor(w.reshape(shape)), as_tensor(b.reshape(shape)))
