"""The uniform per-op interface of the bound engine and the registry from ONNX op type to op.

Every op answers three questions about its (perturbed) inputs, in the spirit of auto_LiRPA's
operator classes:

- ``forward``: the concrete value, batched (leading dimension = samples);
- ``interval``: interval bound propagation (IBP) from input boxes to an output box;
- ``backward``: CROWN's backward step. Given ``A`` (shape ``[B, S, *out]``: ``S`` linear
  functions of the op's output per sample) return, per perturbed input, the coefficients
  ``A_in`` (``[B, S, *in]``) and a bias ``[B, S]`` such that, for every input in the given
  input bounds, ``A . out >= sum_i A_in_i . in_i + bias``. Backward propagation computes
  LOWER bounds only; upper bounds are lower bounds of the negated functions.

Constant inputs (initializers, folded subgraphs) are baked into the op when it is built; the
methods only see the inputs that depend on the model input. Shapes given to builders are
per-sample shapes (the batch dimension removed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import Tensor

from verifiers.errors import UnsupportedOpError


@dataclass(frozen=True)
class Interval:
    """Elementwise lower and upper bounds, both ``[B, *shape]``."""

    lower: Tensor
    upper: Tensor

    @property
    def center(self) -> Tensor:
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> Tensor:
        return (self.upper - self.lower) / 2


@dataclass(frozen=True)
class NodeSpec:
    """What a builder gets: the ONNX node, its constant inputs and the perturbed input shapes.

    ``consts[i]`` is the folded value of input slot ``i``, or None where the slot depends on the
    model input; ``shapes[i]`` is the per-sample shape of a perturbed slot (None for a constant).
    """

    node: onnx.NodeProto
    consts: tuple[np.ndarray | None, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    opset: int

    @property
    def name(self) -> str:
        return self.node.name or f"{self.node.op_type}->{self.node.output[0]}"

    def attr(self, key: str, default=None):
        for a in self.node.attribute:
            if a.name == key:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def perturbed(self, slot: int) -> bool:
        """Does input ``slot`` depend on the model input?"""
        return slot < len(self.consts) and self.consts[slot] is None and bool(
            self.node.input[slot])

    def const(self, slot: int) -> np.ndarray | None:
        """The constant at ``slot``, None if the optional input is absent; refuses an
        input-dependent tensor where the relaxation needs a constant."""
        if self.perturbed(slot):
            raise self.refuse(f"input {slot} must not depend on the model input")
        return self.consts[slot] if slot < len(self.consts) else None

    def perturbed_slots(self) -> list[int]:
        return [i for i in range(len(self.consts)) if self.perturbed(i)]

    def refuse(self, detail: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.node.op_type, self.name, detail)


BackwardResult = tuple[list[Tensor | None], Tensor | None]


class BoundOp:
    """Base class: subclasses override what they support."""

    # Mixing linear ops (Gemm, Conv...) vs. elementwise/shape-only ones decide when IBP is exact.
    linear_kind: str | None = None  # "mixing", "elementwise" or None (nonlinear, multi-input)
    # Elementwise with an exact interval(): each output neuron's range is exact whenever its
    # input neuron's range is (ReLU after one Conv), though the output box is no longer exact.
    exact_pointwise = False
    needs_bounds = False  # backward() needs the bounds of its input
    has_alpha = False  # has an optimisable lower relaxation (alpha-CROWN)

    def __init__(self, spec: NodeSpec) -> None:
        self.name = spec.name
        self.op_type = spec.node.op_type

    def forward(self, *xs: Tensor) -> Tensor:
        raise NotImplementedError

    def interval(self, *xs: Interval) -> Interval:
        raise NotImplementedError

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        raise NotImplementedError

    # Only for ops with needs_bounds: which input neurons deserve a tighter (CROWN) bound.
    def refine_mask(self, bound: Interval) -> Tensor:
        return torch.ones_like(bound.lower, dtype=torch.bool)

    # Only for ops with has_alpha: the CROWN slope to start from, and the admissible range.
    def init_alpha(self, bound: Interval) -> Tensor:
        raise NotImplementedError

    def alpha_range(self) -> tuple[float, float]:
        return 0.0, 1.0

    def to(self, device: torch.device, dtype: torch.dtype) -> BoundOp:
        """Move every float tensor attribute (the baked-in constants)."""
        for key, value in list(vars(self).items()):
            if isinstance(value, Tensor) and value.is_floating_point():
                setattr(self, key, value.to(device=device, dtype=dtype))
        return self


# A builder returns one op, or one op per output for multi-output nodes (Split).
Builder = Callable[[NodeSpec], "BoundOp | list[BoundOp]"]
_REGISTRY: dict[str, Builder] = {}


def register(*op_types: str) -> Callable[[Builder], Builder]:
    def deco(builder: Builder) -> Builder:
        for op_type in op_types:
            _REGISTRY[op_type] = builder
        return builder
    return deco


def supported_ops() -> list[str]:
    return sorted(_REGISTRY)


def build_op(spec: NodeSpec) -> BoundOp | list[BoundOp]:
    builder = _REGISTRY.get(spec.node.op_type)
    if builder is None:
        raise spec.refuse("no bound relaxation for this operator")
    return builder(spec)


# ----------------------------------------------------------------- helpers shared by the ops


def as_tensor(value: np.ndarray) -> Tensor:
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array))


def per_sample_const(spec: NodeSpec, value: np.ndarray, rank: int) -> Tensor:
    """A constant broadcast against a perturbed tensor of per-sample rank ``rank``.

    ONNX broadcasting aligns trailing dimensions over the full tensor (batch included); a
    constant with the full rank must have a batch dimension of 1, which is dropped here.
    """
    t = as_tensor(value).float()
    if t.dim() > rank + 1 or (t.dim() == rank + 1 and t.shape[0] != 1):
        raise spec.refuse(f"constant operand of shape {tuple(t.shape)} varies along the batch")
    if t.dim() == rank + 1:
        t = t[0]
    return t


def unbroadcast(A: Tensor, shape: Sequence[int]) -> Tensor:
    """Sum ``A`` ([B, S, *out]) down to [B, S, *shape] where broadcasting expanded ``shape``."""
    extra = A.dim() - 2 - len(shape)
    if extra > 0:
        A = A.sum(dim=tuple(range(2, 2 + extra)))
    dims = tuple(2 + i for i, n in enumerate(shape) if n == 1 and A.shape[2 + i] != 1)
    if dims:
        A = A.sum(dim=dims, keepdim=True)
    return A


def bias_term(A: Tensor, bias: Tensor) -> Tensor:
    """sum over the output of ``A * bias`` (bias broadcast to the output): shape [B, S]."""
    return (A * bias).flatten(2).sum(-1)


def fold(A: Tensor) -> Tensor:
    """[B, S, *shape] -> [B*S, *shape], to run per-sample torch ops on coefficient rows."""
    return A.reshape(A.shape[0] * A.shape[1], *A.shape[2:])


def unfold(A: Tensor, batch: int, rows: int) -> Tensor:
    return A.reshape(batch, rows, *A.shape[1:])
