"""LayerNormalization: y = z * s * scale + bias with z = x - mean(x) and
s = 1 / sqrt(mean(z^2) + eps), over the axes from ``axis`` on.

Relaxation (sound, loose when the input box is wide): z is linear in x, so its box [zl, zu]
is exact from the input box. mean(z^2) lies in [q_lo, q_hi] (per element max of zl^2, zu^2;
min of them, or 0 where the box holds 0), so s lies in [sl, su] = [1/sqrt(q_hi + eps),
1/sqrt(q_lo + eps)]. For every x in the box z * s lies between min(sl z, su z) (concave in z:
its chord over [zl, zu] is below it) and max(sl z, su z) (convex: its chord is above). Those
two chords are the lines; they are exact when s is pinned (a point box) and the backward step
maps the coefficients of z back to x through the mean subtraction.
"""

from __future__ import annotations

import math
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
    register,
)


class LayerNorm(BoundOp):
    needs_bounds = True

    def __init__(self, spec: NodeSpec, axis: int, eps: float, scale: Tensor,
                 bias: Tensor | None) -> None:
        super().__init__(spec)
        rank = len(spec.shapes[0])
        self.dims = tuple(range(axis + 1, rank + 1))  # batched dims normalised over
        self.n = math.prod(spec.shapes[0][axis:])
        self.eps, self.scale, self.bias = eps, scale, bias

    def forward(self, x: Tensor) -> Tensor:
        z = x - x.mean(self.dims, keepdim=True)
        var = (z * z).mean(self.dims, keepdim=True)
        y = z / torch.sqrt(var + self.eps) * self.scale
        return y if self.bias is None else y + self.bias

    def _boxes(self, x: Interval) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Bounds of z (elementwise) and of s (per normalised group, kept dims)."""
        c, r = x.center.double(), x.radius.double()
        zc = c - c.mean(self.dims, keepdim=True)
        zr = r * (1 - 2 / self.n) + r.sum(self.dims, keepdim=True) / self.n
        zl, zu = zc - zr, zc + zr
        sq_hi = torch.maximum(zl * zl, zu * zu)
        sq_lo = torch.where((zl > 0) | (zu < 0), torch.minimum(zl * zl, zu * zu), 0.0)
        q_hi = sq_hi.mean(self.dims, keepdim=True)
        q_lo = sq_lo.mean(self.dims, keepdim=True)
        return zl, zu, 1 / torch.sqrt(q_hi + self.eps), 1 / torch.sqrt(q_lo + self.eps)

    def interval(self, x: Interval) -> Interval:
        zl, zu, sl, su = self._boxes(x)
        corners = torch.stack([zl * sl, zl * su, zu * sl, zu * su])
        lo, hi = corners.amin(0), corners.amax(0)
        g = self.scale.double()
        center, radius = (lo + hi) / 2 * g, (hi - lo) / 2 * g.abs()
        if self.bias is not None:
            center = center + self.bias.double()
        dtype = x.lower.dtype
        return Interval((center - radius).to(dtype), (center + radius).to(dtype))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        (b,) = bounds
        zl, zu, sl, su = (t.unsqueeze(1) for t in self._boxes(b))
        width = zu - zl
        flat = width <= 0
        safe = torch.where(flat, torch.ones_like(width), width)
        # max(sl z, su z): exact su z for z >= 0, sl z for z <= 0, else the chord.
        up_k = torch.where(zl >= 0, su, torch.where(zu <= 0, sl, (su * zu - sl * zl) / safe))
        up_b = torch.where((zl >= 0) | (zu <= 0), 0.0, sl * zl - up_k * zl)
        low_k = torch.where(zl >= 0, sl, torch.where(zu <= 0, su, (sl * zu - su * zl) / safe))
        low_b = torch.where((zl >= 0) | (zu <= 0), 0.0, su * zl - low_k * zl)
        dtype = A.dtype
        bias = None if self.bias is None else bias_term(A, self.bias)
        A = (A * self.scale).double()
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        coef_z = Ap * low_k + An * up_k
        lin = bias_term(Ap, low_b) + bias_term(An, up_b)
        bias = lin.to(dtype) if bias is None else bias + lin.to(dtype)
        dims = tuple(d + 1 for d in self.dims)
        coef_x = coef_z - coef_z.mean(dims, keepdim=True)
        return [coef_x.to(dtype)], bias


@register("LayerNormalization")
def build_layer_norm(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0) or spec.perturbed(1) or spec.perturbed(2):
        raise spec.refuse("only the data input may depend on the input")
    rank = len(spec.shapes[0]) + 1
    axis = int(spec.attr("axis", -1)) % rank
    if axis == 0:
        raise spec.refuse("normalisation over the batch dimension")
    eps = float(spec.attr("epsilon", 1e-5))
    if not eps > 0:
        raise spec.refuse(f"epsilon {eps} <= 0 (unbounded 1/std)")
    norm_shape = spec.shapes[0][axis - 1:]
    scale = np.asarray(spec.const(1), np.float32)
    bias = spec.const(2)
    for name, value in (("scale", scale), ("bias", bias)):
        if value is not None and np.broadcast_shapes(np.shape(value), norm_shape) != tuple(
                norm_shape):
            raise spec.refuse(f"{name} of shape {np.shape(value)} does not broadcast to the "
                              f"normalised shape {tuple(norm_shape)}")
    return LayerNorm(spec, axis - 1, eps, as_tensor(scale).float(),
                     None if bias is None else as_tensor(bias).float())
