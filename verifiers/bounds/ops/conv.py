"""Conv and AveragePool (a depthwise convolution with a per-position divisor), 1-D and 2-D.

Padding is applied explicitly (zeros) so asymmetric and SAME pads need no special case; the
backward step is the transposed convolution, cropped back to the unpadded input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from verifiers.bounds.ops.base import (
    BackwardResult,
    BoundOp,
    Interval,
    NodeSpec,
    as_tensor,
    bias_term,
    fold,
    register,
    unfold,
)

# Below this many matrix entries the backward step is one dense matrix product: on the CPU,
# strided and dilated transposed convolutions of small layers are far slower than that.
_DENSE_LIMIT = 1 << 20
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def resolve_pads(spec: NodeSpec, in_spatial: Sequence[int], kernel: Sequence[int],
                 strides: Sequence[int], dilations: Sequence[int]) -> list[int]:
    """ONNX pads [b1, b2, ..., e1, e2, ...], auto_pad resolved."""
    n = len(in_spatial)
    auto_pad = spec.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        return list(spec.attr("pads", [0] * 2 * n))
    if auto_pad == "VALID":
        return [0] * 2 * n
    begins, ends = [], []
    for size, k, s, d in zip(in_spatial, kernel, strides, dilations, strict=True):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def torch_pad_order(pads: Sequence[int]) -> list[int]:
    """ONNX [b1, b2, e1, e2] -> torch F.pad order [b_last, e_last, ..., b1, e1]."""
    n = len(pads) // 2
    out: list[int] = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


class WeightedMap(BoundOp):
    """y = linear(x, W) + b with a fixed linear map: forward and IBP from ``_linear`` alone
    (|W| applied to the radius), shared by convolutions and transposed convolutions."""

    weight: Tensor
    bias: Tensor | None
    dims: int

    def _linear(self, x: Tensor, weight: Tensor) -> Tensor:
        raise NotImplementedError

    def _bias_shape(self) -> Tensor:
        assert self.bias is not None
        return self.bias.reshape(-1, *([1] * self.dims))

    def forward(self, x: Tensor) -> Tensor:
        y = self._linear(x, self.weight)
        return y if self.bias is None else y + self._bias_shape()

    def interval(self, x: Interval) -> Interval:
        center = self.forward(x.center)
        radius = self._linear(x.radius, self.weight.abs())
        return Interval(center - radius, center + radius)


class ConvCore(WeightedMap):
    """y = scale * conv(pad(x), W) + b, scale a fixed positive per-position divisor."""

    linear_kind = "mixing"

    def __init__(self, spec: NodeSpec, weight: Tensor, bias: Tensor | None, pads: list[int],
                 strides: list[int], dilations: list[int], groups: int,
                 scale: Tensor | None = None) -> None:
        super().__init__(spec)
        self.weight, self.bias, self.scale = weight, bias, scale
        self.dims = weight.dim() - 2
        if self.dims not in _CONV:
            raise spec.refuse(f"{self.dims}-D convolution")
        self.pads = torch_pad_order(pads)
        self.strides, self.dilations, self.groups = strides, dilations, groups
        self.in_shape = tuple(spec.shapes[0])
        self.padded = tuple(s + pads[i] + pads[i + self.dims]
                            for i, s in enumerate(self.in_shape[1:]))
        self.matrix: Tensor | None = None  # the dense map, [inputs, outputs], built on demand

    def _dense(self, out_numel: int) -> Tensor | None:
        n_in = math.prod(self.in_shape)
        if self.weight.device.type != "cpu" or n_in * out_numel > _DENSE_LIMIT:
            return None
        if self.matrix is None or self.matrix.dtype != self.weight.dtype:
            eye = torch.eye(n_in, dtype=self.weight.dtype).reshape(n_in, *self.in_shape)
            self.matrix = self._linear(eye, self.weight).reshape(n_in, out_numel)
        return self.matrix

    def _linear(self, x: Tensor, weight: Tensor) -> Tensor:
        x = F.pad(x, self.pads) if any(self.pads) else x
        y = _CONV[self.dims](x, weight, None, self.strides, 0, self.dilations, self.groups)
        return y if self.scale is None else y * self.scale

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        batch, rows = A.shape[:2]
        bias = None if self.bias is None else bias_term(A, self._bias_shape())
        matrix = self._dense(math.prod(A.shape[2:]))
        if matrix is not None:
            a_in = A.reshape(batch, rows, -1) @ matrix.T
            return [a_in.reshape(batch, rows, *self.in_shape)], bias
        if self.scale is not None:
            A = A * self.scale
        out_spatial = A.shape[3:]
        extra = [p - ((o - 1) * s + d * (k - 1) + 1) for p, o, s, d, k in zip(
            self.padded, out_spatial, self.strides, self.dilations, self.weight.shape[2:],
            strict=True)]
        a_in = _CONV_T[self.dims](fold(A), self.weight, None, self.strides, 0, extra,
                                  self.groups, self.dilations)
        if any(self.pads):
            a_in = F.pad(a_in, [-p for p in self.pads])
        return [unfold(a_in, batch, rows)], bias


def _geometry(spec: NodeSpec, kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    n = len(kernel)
    strides = list(spec.attr("strides", [1] * n))
    dilations = list(spec.attr("dilations", [1] * n))
    in_shape = spec.shapes[0]
    if in_shape is None or len(in_shape) != n + 1:
        raise spec.refuse(f"expects a [C, {n} spatial] input per sample, got {in_shape}")
    pads = resolve_pads(spec, in_shape[1:], kernel, strides, dilations)
    return pads, strides, dilations


@register("Conv")
def build_conv(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0) or spec.perturbed(1):
        raise spec.refuse("only the data input may depend on the input (constant weights)")
    weight = as_tensor(spec.const(1)).float()
    bias = as_tensor(spec.const(2)).float() if spec.const(2) is not None else None
    pads, strides, dilations = _geometry(spec, list(weight.shape[2:]))
    return ConvCore(spec, weight, bias, pads, strides, dilations, int(spec.attr("group", 1)))


@register("AveragePool")
def build_average_pool(spec: NodeSpec) -> BoundOp:
    kernel = list(spec.attr("kernel_shape"))
    pads, strides, dilations = _geometry(spec, kernel)
    channels = spec.shapes[0][0]
    weight = torch.ones(channels, 1, *kernel)
    op = ConvCore(spec, weight, None, pads, strides, dilations, channels)
    if spec.attr("ceil_mode", 0):
        floor = [(p - d * (k - 1) - 1) // s + 1
                 for p, k, s, d in zip(op.padded, kernel, strides, dilations, strict=True)]
        ceil = [math.ceil((p - d * (k - 1) - 1) / s) + 1
                for p, k, s, d in zip(op.padded, kernel, strides, dilations, strict=True)]
        if floor != ceil:
            raise spec.refuse("ceil_mode=1 with a partial last window")
    if spec.attr("count_include_pad", 0) or not any(pads):
        op.scale = torch.tensor(1.0 / math.prod(kernel))
    else:  # divisor = number of real (unpadded) inputs under each window
        ones = torch.ones(1, channels, *spec.shapes[0][1:])
        op.scale = 1.0 / op._linear(ones, weight)[0]
    return op
