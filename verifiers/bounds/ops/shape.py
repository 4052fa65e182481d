"""Ops that only move values around: Identity, Reshape-like ops, Transpose, Concat, Pad.

Reshape, Flatten, Squeeze and Unsqueeze become one per-sample reshape whose target shape is
taken from running the node (ONNX reference semantics) on a batch of one: an op that would mix
samples (the leading dimension no longer 1) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from onnx.reference import ReferenceEvaluator
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
from verifiers.bounds.ops.conv import torch_pad_order


class Passthrough(BoundOp):
    linear_kind = "elementwise"

    def forward(self, x: Tensor) -> Tensor:
        return x

    def interval(self, x: Interval) -> Interval:
        return x

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        return [A], None


class PerSampleReshape(BoundOp):
    linear_kind = "elementwise"

    def __init__(self, spec: NodeSpec, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...]) -> None:
        super().__init__(spec)
        self.in_shape, self.out_shape = in_shape, out_shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.out_shape)

    def interval(self, x: Interval) -> Interval:
        return Interval(self.forward(x.lower), self.forward(x.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        return [A.reshape(*A.shape[:2], *self.in_shape)], None


def reference_output_shape(spec: NodeSpec) -> tuple[int, ...]:
    """Run the node on a batch of one (zeros for perturbed slots); per-sample output shape."""
    feeds = {}
    for name, const, shape in zip(spec.node.input, spec.consts, spec.shapes, strict=False):
        if name:
            feeds[name] = const if const is not None else np.zeros((1, *shape), np.float32)
    try:
        (out, *_) = ReferenceEvaluator(spec.node).run(None, feeds)
    except Exception as exc:  # the reference runtime raises anything on a malformed node
        raise spec.refuse(f"cannot evaluate the node: {type(exc).__name__}: {exc}") from exc
    if out.ndim == 0 or out.shape[0] != 1:
        raise spec.refuse(f"output shape {out.shape} for a batch of one mixes samples")
    return tuple(int(d) for d in out.shape[1:])


@register("Identity", "Dropout")
def build_identity(spec: NodeSpec) -> BoundOp:
    training = spec.const(2) if spec.node.op_type == "Dropout" else None
    if training is not None and bool(np.asarray(training).any()):
        raise spec.refuse("dropout in training mode is random")
    return Passthrough(spec)


@register("Cast")
def build_cast(spec: NodeSpec) -> BoundOp:
    if spec.attr("to") not in (1, 10, 11):  # FLOAT, FLOAT16, DOUBLE
        raise spec.refuse("cast of an input-dependent tensor to a non-float type")
    return Passthrough(spec)


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def build_reshape(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0) or any(spec.perturbed(i) for i in range(1, len(spec.consts))):
        raise spec.refuse("the target shape must not depend on the input values")
    return PerSampleReshape(spec, tuple(spec.shapes[0]), reference_output_shape(spec))


class Permute(BoundOp):
    linear_kind = "elementwise"

    def __init__(self, spec: NodeSpec, perm: list[int]) -> None:
        super().__init__(spec)
        self.perm = perm  # per-sample permutation
        self.inverse = [int(i) for i in np.argsort(perm)]

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, *(p + 1 for p in self.perm))

    def interval(self, x: Interval) -> Interval:
        return Interval(self.forward(x.lower), self.forward(x.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        return [A.permute(0, 1, *(p + 2 for p in self.inverse))], None


@register("Transpose")
def build_transpose(spec: NodeSpec) -> BoundOp:
    rank = len(spec.shapes[0]) + 1
    perm = list(spec.attr("perm", list(reversed(range(rank)))))
    if perm[0] != 0:
        raise spec.refuse(f"perm {perm} moves the batch dimension")
    return Permute(spec, [p - 1 for p in perm[1:]])


class Concat(BoundOp):
    """Concatenation along a per-sample axis; constant parts add to the bias."""

    def __init__(self, spec: NodeSpec, axis: int) -> None:
        super().__init__(spec)
        self.axis = axis  # per-sample axis
        self.parts: list[Tensor | None] = []
        self.sizes: list[int] = []
        for const, shape in zip(spec.consts, spec.shapes, strict=True):
            if const is None:
                self.parts.append(None)
                self.sizes.append(shape[axis])
            else:
                if const.ndim < 1 or const.shape[0] != 1:
                    raise spec.refuse("constant operand without a batch dimension of 1")
                self.parts.append(as_tensor(const[0]).float())
                self.sizes.append(const.shape[axis + 1])
        if sum(p is None for p in self.parts) == 1:
            self.linear_kind = "elementwise"

    def _join(self, xs: Sequence[Tensor]) -> Tensor:
        it = iter(xs)
        batch = xs[0].shape[0]
        full = [next(it) if p is None else p.expand(batch, *p.shape) for p in self.parts]
        return torch.cat(full, dim=self.axis + 1)

    def forward(self, *xs: Tensor) -> Tensor:
        return self._join(xs)

    def interval(self, *xs: Interval) -> Interval:
        return Interval(self._join([x.lower for x in xs]), self._join([x.upper for x in xs]))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        pieces = torch.split(A, self.sizes, dim=self.axis + 2)
        out, bias = [], None
        for part, piece in zip(self.parts, pieces, strict=True):
            if part is None:
                out.append(piece)
            else:
                term = bias_term(piece, part)
                bias = term if bias is None else bias + term
        return out, bias

    def to(self, device: torch.device, dtype: torch.dtype) -> BoundOp:
        self.parts = [None if p is None else p.to(device, dtype) for p in self.parts]
        return self


@register("Concat")
def build_concat(spec: NodeSpec) -> BoundOp:
    rank = 1 + next(len(s) for s in spec.shapes if s is not None)
    axis = int(spec.attr("axis"))
    axis = axis + rank if axis < 0 else axis
    if axis == 0:
        raise spec.refuse("concatenation along the batch dimension")
    return Concat(spec, axis - 1)


class ConstantPad(BoundOp):
    linear_kind = "elementwise"

    def __init__(self, spec: NodeSpec, pads: list[int], value: float) -> None:
        super().__init__(spec)
        self.pads, self.value = pads, value  # torch order, per-sample dims only

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pads, value=self.value)

    def interval(self, x: Interval) -> Interval:
        return Interval(self.forward(x.lower), self.forward(x.upper))

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        a_in = F.pad(A, [-p for p in self.pads])
        bias = None
        if self.value != 0.0:
            bias = self.value * (A.flatten(2).sum(-1) - a_in.flatten(2).sum(-1))
        return [a_in], bias


@register("Pad")
def build_pad(spec: NodeSpec) -> BoundOp:
    if spec.attr("mode", "constant") != "constant":
        raise spec.refuse(f"pad mode {spec.attr('mode')!r} (only 'constant')")
    if not spec.perturbed(0) or any(spec.perturbed(i) for i in range(1, len(spec.consts))):
        raise spec.refuse("pads and value must be constants")
    rank = len(spec.shapes[0]) + 1
    pads = spec.const(1)
    pads = list(spec.attr("pads", [])) if pads is None else [int(p) for p in pads]
    value = spec.const(2)
    value = float(spec.attr("value", 0.0)) if value is None or value.size == 0 else float(value)
    axes = spec.const(3)
    if axes is not None:  # opset 18: pads only for the listed axes
        full = [0] * 2 * rank
        for i, ax in enumerate(int(a) % rank for a in axes):
            full[ax], full[ax + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if pads[0] or pads[rank]:
        raise spec.refuse("padding along the batch dimension")
    per_sample = pads[1:rank] + pads[rank + 1:]
    return ConstantPad(spec, torch_pad_order(per_sample), value)
