"""Elementwise Max and Min: of two input-dependent tensors, or of one with constants.

max(x, y) = y + relu(x - y) with d = x - y in [lx - uy, ux - ly] = [dl, du]. If dl >= 0 it is
x, if du <= 0 it is y (both lines exact). Otherwise the ReLU chord gives the upper line
``a x + (1 - a) y - a dl`` with ``a = du / (du - dl)``, and ``y + lam (x - y)`` for any lam in
[0, 1] is a lower line (max >= x and max >= y); lam follows CROWN's adaptive ReLU choice.
min(x, y) = -max(-x, -y). With constants only one operand varies: see scalar.MaxConst.
"""

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
    bias_term,
    register,
    unbroadcast,
)
from verifiers.bounds.ops.scalar import build_max_const
from verifiers.bounds.ops.shape import Passthrough


class MaxOfTwo(BoundOp):
    needs_bounds = True

    def __init__(self, spec: NodeSpec, sign: float) -> None:
        super().__init__(spec)
        self.sign = sign  # 1: max, -1: min
        self.shapes = (tuple(spec.shapes[0]), tuple(spec.shapes[1]))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.maximum(a, b) if self.sign > 0 else torch.minimum(a, b)

    def interval(self, a: Interval, b: Interval) -> Interval:
        return Interval(self.forward(a.lower, b.lower), self.forward(a.upper, b.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        a, b = bounds
        s = self.sign
        # In the max frame: x = s a, y = s b, and A . out = (s A) . max(x, y).
        if s > 0:
            lx, ux, ly, uy = a.lower, a.upper, b.lower, b.upper
        else:
            lx, ux, ly, uy = -a.upper, -a.lower, -b.upper, -b.lower
        dl, du = (lx - uy).unsqueeze(1), (ux - ly).unsqueeze(1)
        x_wins, y_wins = dl >= 0, du <= 0
        unstable = ~(x_wins | y_wins)
        width = torch.where(unstable, du - dl, torch.ones_like(du))
        up = torch.where(unstable, du / width, x_wins.to(du.dtype))
        up_bias = torch.where(unstable, -up * dl, torch.zeros_like(du))
        low = torch.where(unstable, (du > -dl).to(du.dtype), x_wins.to(du.dtype))
        A = s * A
        Ap, An = A.clamp(min=0), A.clamp(max=0)
        coef_x = Ap * low + An * up
        coef_y = Ap * (1 - low) + An * (1 - up)
        bias = bias_term(An, up_bias)
        return [unbroadcast(s * coef_x, self.shapes[0]),
                unbroadcast(s * coef_y, self.shapes[1])], bias


@register("Max", "Min")
def build_max_min(spec: NodeSpec) -> BoundOp:
    sign = 1.0 if spec.node.op_type == "Max" else -1.0
    slots = spec.perturbed_slots()
    consts = [np.asarray(spec.consts[i], np.float64) for i in range(len(spec.consts))
              if i not in slots and spec.node.input[i]]
    if len(slots) == 1:
        if not consts:
            return Passthrough(spec)
        combine = np.maximum if sign > 0 else np.minimum
        c = consts[0]
        for other in consts[1:]:
            c = combine(c, other)
        return build_max_const(spec, c, sign)
    if len(slots) == 2 and not consts:
        if len(spec.shapes[slots[0]]) != len(spec.shapes[slots[1]]):
            raise spec.refuse("operands of different rank (broadcasting would reach the batch)")
        return MaxOfTwo(spec, sign)
    raise spec.refuse(f"{len(slots)} input-dependent operands and {len(consts)} constants "
                      "(relaxed: two input-dependent operands, or one with constants)")
