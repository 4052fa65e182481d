"""MaxPool (1-D and 2-D): the linear relaxation of a max over each window.

With input bounds [l, u] per window, let j be the input with the largest lower bound. Then
``y >= x_j`` always, and ``y <= max_i u_i``; when ``l_j >= u_i`` for every other i the max is
exactly ``x_j`` (both bounds linear). Windows are handled with unfold/fold so overlapping
windows, strides, dilations and (-inf) padding all come for free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiers.bounds.ops.base import BackwardResult, BoundOp, Interval, NodeSpec, register
from verifiers.bounds.ops.conv import resolve_pads, torch_pad_order


class MaxPool(BoundOp):
    needs_bounds = True

    def __init__(self, spec: NodeSpec, kernel: list[int], strides: list[int],
                 dilations: list[int], pads: list[int]) -> None:
        super().__init__(spec)
        self.in_shape = tuple(spec.shapes[0])
        lift = len(kernel) == 1  # 1-D pools run as 2-D pools of height one
        self.kernel = ([1] if lift else []) + kernel
        self.strides = ([1] if lift else []) + strides
        self.dilations = ([1] if lift else []) + dilations
        self.pads = torch_pad_order(pads) + ([0, 0] if lift else [])
        self.lift = lift

    def _as2d(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-2) if self.lift else x

    def _padded(self, x: Tensor) -> Tensor:
        return F.pad(self._as2d(x), self.pads, value=-math.inf) if any(self.pads) else \
            self._as2d(x)

    def forward(self, x: Tensor) -> Tensor:
        y = F.max_pool2d(self._padded(x), self.kernel, self.strides, 0, self.dilations)
        return y.squeeze(-2) if self.lift else y

    def interval(self, x: Interval) -> Interval:
        return Interval(self.forward(x.lower), self.forward(x.upper))

    def _windows(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, window size, positions]."""
        cols = F.unfold(x, self.kernel, self.dilations, 0, self.strides)
        return cols.reshape(x.shape[0], x.shape[1], math.prod(self.kernel), -1)

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        (b,) = bounds
        batch, rows = A.shape[:2]
        lp, up = self._padded(b.lower), self._padded(b.upper)
        lw, uw = self._windows(lp), self._windows(up)
        lmax, j = lw.max(dim=2, keepdim=True)
        others = uw.scatter(2, j, -math.inf).amax(dim=2, keepdim=True)
        exact = (lmax >= others).squeeze(2)  # [B, C, P]
        umax = uw.amax(dim=2)  # [B, C, P]
        A = A.reshape(batch, rows, lw.shape[1], -1)  # [B, S, C, P]
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        coef = torch.where(exact.unsqueeze(1), A, Ap)
        loose = torch.where(exact.unsqueeze(1), torch.zeros_like(An), An)
        bias = (loose * umax.unsqueeze(1)).flatten(2).sum(-1)
        index = j.unsqueeze(1).expand(batch, rows, *j.shape[1:])
        cols = torch.zeros(batch, rows, *lw.shape[1:], dtype=A.dtype, device=A.device)
        cols = cols.scatter(3, index, coef.unsqueeze(3))
        cols = cols.reshape(batch * rows, -1, cols.shape[-1])
        a_in = F.fold(cols, lp.shape[2:], self.kernel, self.dilations, 0, self.strides)
        if any(self.pads):
            a_in = F.pad(a_in, [-p for p in self.pads])
        if self.lift:
            a_in = a_in.squeeze(-2)
        return [a_in.reshape(batch, rows, *self.in_shape)], bias


@register("MaxPool")
def build_max_pool(spec: NodeSpec) -> BoundOp:
    kernel = list(spec.attr("kernel_shape"))
    if len(kernel) not in (1, 2):
        raise spec.refuse(f"{len(kernel)}-D max pooling")
    if spec.attr("storage_order", 0):
        raise spec.refuse("storage_order=1")
    strides = list(spec.attr("strides", [1] * len(kernel)))
    dilations = list(spec.attr("dilations", [1] * len(kernel)))
    in_shape = spec.shapes[0]
    if in_shape is None or len(in_shape) != len(kernel) + 1:
        raise spec.refuse(f"expects a [C, spatial] input per sample, got {in_shape}")
    pads = resolve_pads(spec, in_shape[1:], kernel, strides, dilations)
    if spec.attr("ceil_mode", 0):
        n = len(kernel)
        sizes = [s + pads[i] + pads[i + n] - dilations[i] * (kernel[i] - 1) - 1
                 for i, s in enumerate(in_shape[1:])]
        if any(size % st for size, st in zip(sizes, strides, strict=True)):
            raise spec.refuse("ceil_mode=1 with a partial last window")
    return MaxPool(spec, kernel, strides, dilations, pads)
