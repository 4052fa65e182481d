"""Elementwise functions of any shape (not necessarily monotone or convex), relaxed exactly
for a chosen slope.

For a slope ``k`` the tightest intercepts of lines ``k x + b`` below and above ``f`` on
``[l, u]`` are the minimum and maximum of ``g(x) = f(x) - k x``. Those extremes lie at an end
point, a breakpoint (a kink of ``f``, or where ``f'`` changes monotonicity) or a stationary
point ``f'(x) = k``; between consecutive breakpoints ``f'`` is monotone, so each piece holds at
most one stationary point, found by bisection (piecewise-linear functions have none). So the
lines are sound for ANY slope; the slope only decides tightness. Each line takes, from a few
candidates (the chord, ``f'`` at both ends and the middle, the slopes of the linear pieces),
the one that is best at the midpoint of ``[l, u]``. The same enumeration with ``k = 0`` gives
the exact range of ``f`` on ``[l, u]`` for IBP. Computed in float64.

Piecewise linear: Abs, Clip, HardSigmoid, PRelu, Max/Min with a constant. Smooth: Softplus,
Elu, Erf, Gelu (exact erf form).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from verifiers.bounds.ops.activation import ActivationOp, Relaxation
from verifiers.bounds.ops.base import Interval, NodeSpec, per_sample_const, register

_BISECT_STEPS = 60


class ScalarOp(ActivationOp):
    """Subclasses give ``fn``, ``deriv`` (any one-sided value at a kink), ``breakpoints``
    (sorted when ``smooth``) and, for piecewise-linear ones, ``piece_slopes``."""

    smooth = True  # stationary points need a root search (False: f' piecewise constant)

    def breakpoints(self) -> list[Tensor]:
        return []

    def piece_slopes(self) -> list[Tensor]:
        return []

    # ---------------------------------------------------------------- exact extremes of f - kx

    def _root(self, a: Tensor, b: Tensor, k: Tensor) -> Tensor:
        """The x in [a, b] with f'(x) = k when f' - k changes sign there (f' monotone on
        [a, b]); otherwise any point of [a, b] (an extra candidate is harmless)."""
        ha, hb = self.deriv(a) - k, self.deriv(b) - k
        rising = hb > ha
        lo, hi = a, b
        for _ in range(_BISECT_STEPS):
            mid = (lo + hi) / 2
            go_up = (self.deriv(mid) - k < 0) == rising
            lo, hi = torch.where(go_up, mid, lo), torch.where(go_up, hi, mid)
        return (lo + hi) / 2

    def _candidates(self, lower: Tensor, upper: Tensor, k: Tensor | None) -> list[Tensor]:
        inner = [torch.minimum(torch.maximum(_param(lower, b), lower), upper)
                 for b in self.breakpoints()]
        points = [lower, upper, *inner]
        if self.smooth:
            edges = [lower, *inner, upper]
            slope = torch.zeros_like(lower) if k is None else k
            points += [self._root(a, b, slope) for a, b in zip(edges, edges[1:], strict=False)]
        return points

    def _extremes(self, lower: Tensor, upper: Tensor, k: Tensor | None,
                  points: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """min and max of f(x) - k x over [l, u] (k None: of f)."""
        points = self._candidates(lower, upper, k) if points is None else points
        values = torch.stack([self.fn(p) - (0 if k is None else k * p) for p in points])
        return values.amin(0), values.amax(0)

    # -------------------------------------------------------------------------- interface

    def interval(self, x: Interval) -> Interval:
        lo, hi = x.lower.double(), x.upper.double()
        with torch.no_grad():
            low, high = self._extremes(lo, hi, None)
        return Interval(low.to(x.lower.dtype), high.to(x.lower.dtype))

    def refine_mask(self, bound: Interval) -> Tensor:
        if self.smooth:
            return bound.upper > bound.lower
        mask = torch.zeros_like(bound.lower, dtype=torch.bool)
        for b in self.breakpoints():
            b = b.to(bound.lower.dtype)
            mask |= (bound.lower < b) & (b < bound.upper)
        return mask

    def _slopes(self, lower: Tensor, upper: Tensor) -> list[Tensor]:
        width = upper - lower
        flat = width <= 0
        chord = (self.fn(upper) - self.fn(lower)) / torch.where(flat, 1.0, width)
        mid = (lower + upper) / 2
        chord = torch.where(flat, self.deriv(mid), chord)
        slopes = [chord, self.deriv(lower), self.deriv(upper), self.deriv(mid)]
        return slopes + [torch.broadcast_to(_param(lower, s), lower.shape)
                         for s in self.piece_slopes()]

    def relax(self, lower: Tensor, upper: Tensor, alpha: Tensor | None) -> Relaxation:
        dtype = lower.dtype
        lo, hi = lower.double(), upper.double()
        mid = (lo + hi) / 2
        with torch.no_grad():
            best_low = best_up = None
            for k in self._slopes(lo, hi):
                bl, bu = self._extremes(lo, hi, k)
                if best_low is None:
                    best_low, best_up = (k, bl), (k, bu)
                    continue
                take = k * mid + bl > best_low[0] * mid + best_low[1]
                best_low = (torch.where(take, k, best_low[0]), torch.where(take, bl, best_low[1]))
                take = k * mid + bu < best_up[0] * mid + best_up[1]
                best_up = (torch.where(take, k, best_up[0]), torch.where(take, bu, best_up[1]))
        (kl, bl), (ku, bu) = best_low, best_up
        return Relaxation(kl.to(dtype), bl.to(dtype), ku.to(dtype), bu.to(dtype))

    def to(self, device: torch.device, dtype: torch.dtype) -> ScalarOp:
        for key, value in list(vars(self).items()):  # parameters stay float64
            if isinstance(value, Tensor):
                setattr(self, key, value.to(device=device))
        return self


def _param(x: Tensor, p: Tensor) -> Tensor:
    return p.to(device=x.device, dtype=x.dtype)


# ------------------------------------------------------------------------- piecewise linear


class Abs(ScalarOp):
    smooth = False

    def fn(self, x: Tensor) -> Tensor:
        return x.abs()

    def deriv(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, -1.0, 1.0).to(x.dtype)

    def breakpoints(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64)]


class Clip(ScalarOp):
    """clamp(x, low, high), either bound optional; HardSigmoid is clip(a x + b, 0, 1)."""

    smooth = False

    def __init__(self, spec: NodeSpec, low: Tensor | None, high: Tensor | None,
                 scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__(spec)
        self.low, self.high, self.scale, self.shift = low, high, scale, shift

    def fn(self, x: Tensor) -> Tensor:
        y = x * self.scale + self.shift if (self.scale, self.shift) != (1.0, 0.0) else x
        if self.low is not None:
            y = torch.maximum(y, _param(y, self.low))
        if self.high is not None:
            y = torch.minimum(y, _param(y, self.high))
        return y

    def deriv(self, x: Tensor) -> Tensor:
        y = x * self.scale + self.shift
        inside = torch.ones_like(x, dtype=torch.bool)
        if self.low is not None:
            inside &= y > _param(y, self.low)
        if self.high is not None:
            inside &= y < _param(y, self.high)
        return inside.to(x.dtype) * self.scale

    def breakpoints(self) -> list[Tensor]:
        if self.scale == 0.0:
            return []
        return [(b.double() - self.shift) / self.scale for b in (self.low, self.high)
                if b is not None]

    def piece_slopes(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64),
                torch.tensor(self.scale, dtype=torch.float64)]


class MaxConst(ScalarOp):
    """max(x, c) (sign 1) or min(x, c) (sign -1) for a constant c broadcast against x."""

    smooth = False

    def __init__(self, spec: NodeSpec, c: Tensor, sign: float) -> None:
        super().__init__(spec)
        self.c, self.sign = c.double(), sign

    def fn(self, x: Tensor) -> Tensor:
        c = _param(x, self.c)
        return torch.maximum(x, c) if self.sign > 0 else torch.minimum(x, c)

    def deriv(self, x: Tensor) -> Tensor:
        return ((x - _param(x, self.c)) * self.sign > 0).to(x.dtype)

    def breakpoints(self) -> list[Tensor]:
        return [self.c]

    def piece_slopes(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)]


class PRelu(ScalarOp):
    """x for x >= 0, s x below (s any constant broadcast against x, per channel usually)."""

    smooth = False

    def __init__(self, spec: NodeSpec, slope: Tensor) -> None:
        super().__init__(spec)
        self.slope = slope.double()

    def fn(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, x * _param(x, self.slope), x)

    def deriv(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, _param(x, self.slope), torch.ones_like(x))

    def breakpoints(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64)]

    def piece_slopes(self) -> list[Tensor]:
        return [self.slope, torch.tensor(1.0, dtype=torch.float64)]


# ---------------------------------------------------------------------------------- smooth


class Softplus(ScalarOp):
    """log(1 + e^x): convex, f' = sigmoid is increasing everywhere (no breakpoint)."""

    def fn(self, x: Tensor) -> Tensor:
        return torch.logaddexp(x, torch.zeros_like(x))

    def deriv(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)


class Elu(ScalarOp):
    """x for x > 0, a (e^x - 1) below; f' = a e^x then 1: monotone on each side of 0."""

    def __init__(self, spec: NodeSpec, alpha: float) -> None:
        super().__init__(spec)
        self.alpha = alpha

    def fn(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, x, self.alpha * torch.expm1(x.clamp(max=0)))

    def deriv(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, torch.ones_like(x), self.alpha * torch.exp(x.clamp(max=0)))

    def breakpoints(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64)]


class Erf(ScalarOp):
    """erf: f' = 2/sqrt(pi) e^(-x^2) rises up to 0 and falls after it."""

    def fn(self, x: Tensor) -> Tensor:
        return torch.erf(x)

    def deriv(self, x: Tensor) -> Tensor:
        return 2 / math.sqrt(math.pi) * torch.exp(-x * x)

    def breakpoints(self) -> list[Tensor]:
        return [torch.tensor(0.0, dtype=torch.float64)]


class Gelu(ScalarOp):
    """x Phi(x). f' = Phi + x phi; f'' = phi (2 - x^2): f' falls, rises, falls, turning at
    -sqrt(2) and sqrt(2)."""

    def fn(self, x: Tensor) -> Tensor:
        return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))

    def deriv(self, x: Tensor) -> Tensor:
        return 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(
            2 * math.pi)

    def breakpoints(self) -> list[Tensor]:
        r = torch.tensor(math.sqrt(2), dtype=torch.float64)
        return [-r, r]


# --------------------------------------------------------------------------------- builders


def _rank(spec: NodeSpec) -> int:
    return len(spec.shapes[0])


def _only_data_perturbed(spec: NodeSpec) -> None:
    if not spec.perturbed(0) or any(spec.perturbed(i) for i in range(1, len(spec.consts))):
        raise spec.refuse("only the data input may depend on the input")


@register("Abs")
def build_abs(spec: NodeSpec) -> ScalarOp:
    return Abs(spec)


@register("Clip")
def build_clip(spec: NodeSpec) -> ScalarOp:
    _only_data_perturbed(spec)
    bounds = []
    for slot, key in ((1, "min"), (2, "max")):
        value = spec.const(slot) if slot < len(spec.consts) else None
        if value is None and spec.opset < 11:
            value = spec.attr(key)
        if value is not None and np.asarray(value).size != 1:
            raise spec.refuse(f"{key} must be a scalar")
        bounds.append(None if value is None else torch.tensor(float(np.asarray(value)),
                                                              dtype=torch.float64))
    low, high = bounds
    if low is not None and high is not None and float(low) > float(high):
        raise spec.refuse("min > max")  # onnxruntime and numpy disagree on this case
    return Clip(spec, low, high)


@register("HardSigmoid")
def build_hard_sigmoid(spec: NodeSpec) -> ScalarOp:
    alpha, beta = float(spec.attr("alpha", 0.2)), float(spec.attr("beta", 0.5))
    zero, one = (torch.tensor(v, dtype=torch.float64) for v in (0.0, 1.0))
    return Clip(spec, zero, one, alpha, beta)


@register("PRelu")
def build_prelu(spec: NodeSpec) -> ScalarOp:
    _only_data_perturbed(spec)
    slope = per_sample_const(spec, spec.const(1), _rank(spec))
    return PRelu(spec, slope.double())


@register("Softplus")
def build_softplus(spec: NodeSpec) -> ScalarOp:
    return Softplus(spec)


@register("Elu")
def build_elu(spec: NodeSpec) -> ScalarOp:
    alpha = float(spec.attr("alpha", 1.0))
    if alpha < 0:
        raise spec.refuse(f"alpha {alpha} < 0")
    return Elu(spec, alpha)


@register("Erf")
def build_erf(spec: NodeSpec) -> ScalarOp:
    return Erf(spec)


@register("Gelu")
def build_gelu(spec: NodeSpec) -> ScalarOp:
    if spec.attr("approximate", "none") != "none":
        raise spec.refuse("approximate='tanh' (only the exact erf form is relaxed)")
    return Gelu(spec)


def build_max_const(spec: NodeSpec, c: np.ndarray, sign: float) -> ScalarOp:
    return MaxConst(spec, per_sample_const(spec, c, _rank(spec)).double(), sign)

