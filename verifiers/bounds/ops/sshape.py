"""Sigmoid and Tanh: S-shaped functions, convex left of 0 and concave right of it.

Slopes follow CROWN (chord where it is valid, else the tangent through an end point). The
intercept is then the exact tightest one for that slope: the extreme of f(x) - k x over
[l, u], attained at an end point or where f'(x) = k, which has a closed form for both
functions. So the lines are sound whatever slope the heuristic picked. Computed in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from verifiers.bounds.ops.activation import ActivationOp, Relaxation
from verifiers.bounds.ops.base import NodeSpec, register

_BISECT_STEPS = 30


class SShaped(ActivationOp):
    peak = 1.0  # f'(0), the largest slope

    def deriv(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def positive_root(self, k: Tensor) -> Tensor:
        """The x >= 0 with f'(x) = k, for 0 < k <= peak."""
        raise NotImplementedError

    def _upper_slope(self, lower: Tensor, upper: Tensor) -> Tensor:
        f, df = self.fn, self.deriv
        width = upper - lower
        flat = width < 1e-9
        chord = torch.where(flat, df(lower), (f(upper) - f(lower)) / torch.where(flat, 1.0, width))
        # Mixed sign: tangent at d >= 0 whose line passes through (l, f(l)); T_t(l) grows with t.
        def below(t: Tensor) -> Tensor:  # tangent at t passes below (l, f(l))
            return f(t) + df(t) * (lower - t) < f(lower)
        top = upper.clamp(min=0)
        lo, hi = torch.zeros_like(top), top
        for _ in range(_BISECT_STEPS):
            mid = (lo + hi) / 2
            go_up = below(mid)
            lo, hi = torch.where(go_up, mid, lo), torch.where(go_up, hi, mid)
        mixed = torch.where(below(top), chord, df(hi))
        concave = df((lower + upper) / 2)
        return torch.where(upper <= 0, chord, torch.where(lower >= 0, concave, mixed))

    def _extreme(self, lower: Tensor, upper: Tensor, k: Tensor, root: Tensor,
                 take_max: bool) -> Tensor:
        pick = torch.maximum if take_max else torch.minimum
        inner = root.clamp(lower, upper)
        best = pick(self.fn(lower) - k * lower, self.fn(upper) - k * upper)
        return pick(best, self.fn(inner) - k * inner)

    def relax(self, lower: Tensor, upper: Tensor, alpha: Tensor | None) -> Relaxation:
        dtype = lower.dtype
        lo, hi = lower.double(), upper.double()
        with torch.no_grad():  # any slope is sound: no gradient through the heuristic
            ku = self._upper_slope(lo, hi).clamp(1e-300, self.peak)
            kl = self._upper_slope(-hi, -lo).clamp(1e-300, self.peak)  # mirror image
        ub = self._extreme(lo, hi, ku, self.positive_root(ku), take_max=True)
        lb = self._extreme(lo, hi, kl, -self.positive_root(kl), take_max=False)
        return Relaxation(kl.to(dtype), lb.to(dtype), ku.to(dtype), ub.to(dtype))


class Sigmoid(SShaped):
    peak = 0.25

    def fn(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)

    def deriv(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)

    def positive_root(self, k: Tensor) -> Tensor:
        # s (1 - s) = k with s = (1 + r) / 2, r = sqrt(1 - 4k): s / (1 - s) = (1 + r)^2 / 4k.
        r = torch.sqrt((1 - 4 * k).clamp(min=0))
        return 2 * torch.log1p(r) - torch.log(4 * k)


class Tanh(SShaped):
    peak = 1.0

    def fn(self, x: Tensor) -> Tensor:
        return torch.tanh(x)

    def deriv(self, x: Tensor) -> Tensor:
        return 1 - torch.tanh(x) ** 2

    def positive_root(self, k: Tensor) -> Tensor:
        # 1 - t^2 = k; atanh(t) = (log(1 + t) - log(1 - t)) / 2 with 1 - t = k / (1 + t).
        t = torch.sqrt((1 - k).clamp(min=0))
        return (2 * torch.log1p(t) - torch.log(k)) / 2


@register("Sigmoid")
def build_sigmoid(spec: NodeSpec) -> Sigmoid:
    return Sigmoid(spec)


@register("Tanh")
def build_tanh(spec: NodeSpec) -> Tanh:
    return Tanh(spec)
