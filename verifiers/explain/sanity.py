"""Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency
maps"): re-initialise the model's weight layers one by one from the output down and compare
the attributions with the original ones. An explanation that stays the same says nothing
about what the model learned (it reflects the input, or the architecture).

Layers are the ONNX nodes with learned weights (Conv, ConvTranspose, Gemm, MatMul) and their
float initializers; an ``Add`` right after one whose other input is a float initializer is
its bias. Each is re-drawn from a seeded normal with the original tensor's standard deviation
(zeros stay zeros), so activations keep their scale. Normalisation constants in front of the
model and BatchNormalization statistics are left alone.

Similarity: Spearman rank correlation of the signed maps, per sample, averaged (samples with
a constant map on either side are skipped and counted). Signed, because the absolute value
ranks every zero-input pixel of gradient x input or zero-baseline integrated gradients last
on both sides, which alone makes two unrelated maps look alike (Adebayo et al. report both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from verifiers.interrupt import checkpoint

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Layer:
    node: str                  # the weighted node's name (or op and index)
    initializers: tuple[str, ...]


def weight_layers(proto: onnx.ModelProto) -> list[Layer]:
    """The weighted layers in graph (topological) order, each with its float initializers."""
    floats = {t.name for t in proto.graph.initializer
              if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                 onnx.TensorProto.FLOAT16)}
    layers: list[Layer] = []
    producer: dict[str, int] = {}
    for i, node in enumerate(proto.graph.node):
        names = tuple(n for n in node.input if n in floats)
        if node.op_type in WEIGHT_OPS and names:
            layers.append(Layer(node.name or f"{node.op_type}_{i}", names))
            for out in node.output:
                producer[out] = len(layers) - 1
        elif node.op_type == "Add" and names and any(n in producer for n in node.input):
            k = next(producer[n] for n in node.input if n in producer)
            layers[k] = Layer(layers[k].node, layers[k].initializers + names)
    return layers


def redrawn(proto: onnx.ModelProto, layers: list[Layer], seed: int) -> dict[str, np.ndarray]:
    """New values for every layer's initializers: a seeded normal with the original tensor's
    standard deviation (zeros stay zeros); one stream per layer, so a stage never shifts
    another's draws."""
    by_name = {t.name: t for t in proto.graph.initializer}
    new: dict[str, np.ndarray] = {}
    for k, layer in enumerate(layers):
        rng = np.random.default_rng([seed, k])
        for name in layer.initializers:
            values = numpy_helper.to_array(by_name[name])
            std = float(values.astype(np.float64).std())
            drawn = rng.standard_normal(values.shape) * std if std > 0 else \
                np.zeros(values.shape)
            new[name] = drawn.astype(values.dtype)
    return new


def with_weights(proto: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``proto`` whose named initializers hold ``values``."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    for tensor in out.graph.initializer:
        if tensor.name in values:
            tensor.CopyFrom(numpy_helper.from_array(values[tensor.name], tensor.name))
    return out


def cascade(proto: onnx.ModelProto, seed: int) -> list[tuple[str, onnx.ModelProto]]:
    """(lowest layer randomised so far, model) for each stage: the top layer, then the top
    two, ... down to every weight layer. Stage k keeps stage k-1's draws."""
    layers = weight_layers(proto)
    new = redrawn(proto, layers, seed)
    stages = []
    for k in range(1, len(layers) + 1):
        checkpoint()
        chosen = layers[::-1][:k]
        values = {n: new[n] for layer in chosen for n in layer.initializers}
        stages.append((chosen[-1].node, with_weights(proto, values)))
    return stages


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row pair (ties share their average rank); NaN
    where either row is constant."""
    ra = np.stack([_ranks(r) for r in a.reshape(len(a), -1)])
    rb = np.stack([_ranks(r) for r in b.reshape(len(b), -1)])
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def _ranks(row: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse]
