"""ConvTranspose (1-, 2- and 3-D), a linear map.

The full transposed convolution (no padding) is cropped by the ONNX ``pads`` and extended by
``output_padding`` (zeros plus bias at the end). Its adjoint, the backward step, is the
ordinary convolution with the same weight, stride, dilation and groups applied to the
coefficients after undoing the crop.
"""

from __future__ import annotations

from collections.abc import Sequence

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
from verifiers.bounds.ops.conv import _CONV, _CONV_T, WeightedMap, torch_pad_order


class ConvTranspose(WeightedMap):
    linear_kind = "mixing"

    def __init__(self, spec: NodeSpec, weight: Tensor, bias: Tensor | None, pads: list[int],
                 output_padding: list[int], strides: list[int], dilations: list[int],
                 groups: int) -> None:
        super().__init__(spec)
        self.weight, self.bias = weight, bias
        self.dims = weight.dim() - 2
        self.strides, self.dilations, self.groups = strides, dilations, groups
        n = self.dims
        # F.pad order; crop = negative pad. output_padding extends the end of each axis.
        self.crop = torch_pad_order([-p for p in pads[:n]]
                                    + [op - p for p, op in zip(pads[n:], output_padding,
                                                               strict=True)])
        self.in_shape = tuple(spec.shapes[0])

    def _linear(self, x: Tensor, weight: Tensor) -> Tensor:
        y = _CONV_T[self.dims](x, weight, None, self.strides, 0, 0, self.groups,
                               self.dilations)
        return F.pad(y, self.crop) if any(self.crop) else y

    def backward(self, A: Tensor, bounds: Sequence[Interval | None],
                 alpha: Tensor | None = None) -> BackwardResult:
        batch, rows = A.shape[:2]
        bias = None if self.bias is None else bias_term(A, self._bias_shape())
        full = fold(A)
        if any(self.crop):
            full = F.pad(full, [-c for c in self.crop])  # back to the uncropped full output
        a_in = _CONV[self.dims](full, self.weight, None, self.strides, 0, self.dilations,
                                self.groups)
        return [unfold(a_in, batch, rows)], bias


@register("ConvTranspose")
def build_conv_transpose(spec: NodeSpec) -> BoundOp:
    if not spec.perturbed(0) or spec.perturbed(1) or spec.perturbed(2):
        raise spec.refuse("only the data input may depend on the input (constant weights)")
    weight = as_tensor(spec.const(1)).float()
    n = weight.dim() - 2
    in_shape = spec.shapes[0]
    if n not in _CONV or in_shape is None or len(in_shape) != n + 1:
        raise spec.refuse(f"expects a [C, spatial] input per sample and a {n}-D kernel")
    if spec.attr("auto_pad", "NOTSET") not in ("NOTSET", "") or spec.attr("output_shape"):
        raise spec.refuse("auto_pad / output_shape (give explicit pads instead)")
    kernel = list(spec.attr("kernel_shape", list(weight.shape[2:])))
    if kernel != list(weight.shape[2:]):
        raise spec.refuse("kernel_shape disagrees with the weight")
    bias = as_tensor(spec.const(2)).float() if spec.const(2) is not None else None
    return ConvTranspose(
        spec, weight, bias,
        pads=list(spec.attr("pads", [0] * 2 * n)),
        output_padding=list(spec.attr("output_padding", [0] * n)),
        strides=list(spec.attr("strides", [1] * n)),
        dilations=list(spec.attr("dilations", [1] * n)),
        groups=int(spec.attr("group", 1)))
