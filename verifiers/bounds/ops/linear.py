"""Gemm and MatMul with a constant weight: y = x W + b (or W x), the perturbed side on x."""

from __future__ import annotations

from collections.abc import Sequence

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
)


class RightLinear(BoundOp):
    """y = x @ W + b over the last axis of x (W is [K, N], b broadcasts to the output)."""

    linear_kind = "mixing"

    def __init__(self, spec: NodeSpec, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__(spec)
        self.weight = weight
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.weight
        return y if self.bias is None else y + self.bias

    def interval(self, x: Interval) -> Interval:
        center = self.forward(x.center)
        radius = x.radius @ self.weight.abs()
        return Interval(center - radius, center + radius)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        bias = None if self.bias is None else bias_term(A, self.bias)
        return [A @ self.weight.T], bias


class LeftLinear(BoundOp):
    """y = W @ x for a constant 2-D W and x with at least two per-sample axes."""

    linear_kind = "mixing"

    def __init__(self, spec: NodeSpec, weight: Tensor) -> None:
        super().__init__(spec)
        self.weight = weight

    def forward(self, x: Tensor) -> Tensor:
        return self.weight @ x

    def interval(self, x: Interval) -> Interval:
        center = self.weight @ x.center
        radius = self.weight.abs() @ x.radius
        return Interval(center - radius, center + radius)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        return [self.weight.T @ A], None


@register("Gemm")
def build_gemm(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0) or spec.perturbed(1):
        raise spec.refuse("only the first operand may depend on the input (constant weights)")
    if spec.attr("transA", 0):
        raise spec.refuse("transA=1 would transpose the batch dimension")
    weight = as_tensor(spec.const(1)).float()
    if spec.attr("transB", 0):
        weight = weight.T
    weight = float(spec.attr("alpha", 1.0)) * weight
    bias = spec.const(2)
    if bias is not None:
        bias = float(spec.attr("beta", 1.0)) * per_sample_const(spec, bias, 1)
    return RightLinear(spec, weight.contiguous(), bias)


@register("MatMul")
def build_matmul(spec: NodeSpec) -> BoundOp:
    a, b = spec.consts[0], spec.consts[1]
    if a is None and b is None:
        raise spec.refuse("product of two input-dependent tensors is not linear")
    if a is None:
        if b.ndim != 2:
            raise spec.refuse(f"constant right operand must be 2-D, got shape {b.shape}")
        return RightLinear(spec, as_tensor(b).float(), None)
    x_shape = spec.shapes[1]
    if a.ndim != 2 or x_shape is None or len(x_shape) < 2:
        raise spec.refuse("constant left operand must be 2-D and the right one a matrix")
    return LeftLinear(spec, as_tensor(a).float())


