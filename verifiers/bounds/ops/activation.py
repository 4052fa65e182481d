"""Elementwise activations bounded by two lines per neuron, and the piecewise-linear ones.

For input bounds [l, u] a relaxation gives ``ls*x + lb <= f(x) <= us*x + ub`` on [l, u]. The
backward step then takes the lower line where a coefficient is positive and the upper line
where it is negative (CROWN, Zhang et al. 2018).

ReLU and LeakyReLU expose their lower slope to alpha-CROWN: any slope in [negative_slope, 1]
through the origin is a valid lower line, so the optimiser may move it freely in that range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiers.bounds.ops.base import (
    BackwardResult,
    BoundOp,
    Interval,
    NodeSpec,
    bias_term,
    register,
)


@dataclass(frozen=True)
class Relaxation:
    lower_slope: Tensor
    lower_bias: Tensor | None
    upper_slope: Tensor
    upper_bias: Tensor | None


class ActivationOp(BoundOp):
    """Monotone non-decreasing elementwise function with a two-line relaxation."""

    needs_bounds = True
    exact_pointwise = True  # interval() is f(l), f(u): exact per neuron

    def fn(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def relax(self, lower: Tensor, upper: Tensor, alpha: Tensor | None) -> Relaxation:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def interval(self, x: Interval) -> Interval:
        return Interval(self.fn(x.lower), self.fn(x.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        (b,) = bounds
        r = self.relax(b.lower.unsqueeze(1), b.upper.unsqueeze(1), alpha)
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        a_in = Ap * r.lower_slope + An * r.upper_slope
        bias = None
        if r.lower_bias is not None:
            bias = bias_term(Ap, r.lower_bias)
        if r.upper_bias is not None:
            term = bias_term(An, r.upper_bias)
            bias = term if bias is None else bias + term
        return [a_in], bias


class LeakyRelu(ActivationOp):
    """max(x, 0) + slope * min(x, 0) for 0 <= slope < 1 (slope 0: ReLU)."""

    has_alpha = True

    def __init__(self, spec: NodeSpec, slope: float) -> None:
        super().__init__(spec)
        self.slope = slope

    def fn(self, x: Tensor) -> Tensor:
        return F.relu(x) if self.slope == 0.0 else F.leaky_relu(x, self.slope)

    def refine_mask(self, bound: Interval) -> Tensor:
        return (bound.lower < 0) & (bound.upper > 0)

    def init_alpha(self, bound: Interval) -> Tensor:
        # CROWN's adaptive choice: slope 1 when the positive side dominates.
        return torch.where(bound.upper > -bound.lower, 1.0, self.slope).to(bound.lower.dtype)

    def alpha_range(self) -> tuple[float, float]:
        return self.slope, 1.0

    def relax(self, lower: Tensor, upper: Tensor, alpha: Tensor | None) -> Relaxation:
        active, inactive = lower >= 0, upper <= 0
        unstable = ~(active | inactive)
        width = torch.where(unstable, upper - lower, torch.ones_like(lower))
        chord = (upper - self.slope * lower) / width
        one = torch.ones_like(lower)
        stable_slope = torch.where(active, one, self.slope * one)
        upper_slope = torch.where(unstable, chord, stable_slope)
        upper_bias = torch.where(unstable, upper * (1 - chord), torch.zeros_like(lower))
        if alpha is None:
            alpha = self.init_alpha(Interval(lower, upper))
        lower_slope = torch.where(unstable, alpha, stable_slope)
        return Relaxation(lower_slope, None, upper_slope, upper_bias)


@register("Relu")
def build_relu(spec: NodeSpec) -> BoundOp:
    return LeakyRelu(spec, 0.0)


@register("LeakyRelu")
def build_leaky_relu(spec: NodeSpec) -> BoundOp:
    slope = float(spec.attr("alpha", 0.01))
    if not 0.0 <= slope <= 1.0:
        raise spec.refuse(f"negative slope {slope} outside [0, 1] (not convex)")
    return LeakyRelu(spec, slope)
