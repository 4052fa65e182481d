"""Small hand-built ONNX graphs in the shapes of published verification benchmarks.

Fixed batch of 1, normalisation as Sub/Div before the first layer, NHWC inputs behind a
Transpose, old opsets (8-12) whose exporters listed initializers as graph inputs, Flatten or
a constant Reshape after Conv, Gemm with transB. They seed the intake fuzzer and its tests;
weights come from a seeded generator, so every build gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 10


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray, name: str = "") -> str:
        self.count += 1
        name = name or f"c{self.count}"
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, *shape: int) -> str:
        scale = 1.0 / np.sqrt(max(int(np.prod(shape[1:])), 1))
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32))

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        self.count += 1
        out = f"{op_type.lower()}{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self.count}",
                                           **attrs))
        return out

    def model(self, x: onnx.ValueInfoProto, out: str, out_shape: list, opset: int,
              inits_as_inputs: bool = False, producer: str = "hand-built") -> onnx.ModelProto:
        assert self.nodes[-1].output[0] == out, "the output is the last node's"
        self.nodes[-1].output[0] = "output"
        y = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
        inputs = [x]
        if inits_as_inputs:  # IR < 4 requires it; old exporters did it at every IR version
            inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                       for t in self.inits]
        graph = helper.make_graph(self.nodes, "benchmark", inputs, [y], self.inits)
        opsets = [helper.make_opsetid("", opset)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name=producer,
                                  ir_version=helper.find_min_ir_version_for(opsets))
        onnx.checker.check_model(model, full_check=True)
        return model


def mlp_gemm(opset: int = 11, batch: int | None = 1, features: int = 64, hidden: int = 32,
             softmax: bool = False, seed: int = 0) -> onnx.ModelProto:
    """Sub/Div normalisation, Gemm(transB=1) + Relu layers (ERAN/VNN-COMP MNIST MLP shape)."""
    b = _Builder(seed)
    h = b.op("Sub", ["input", b.const(np.array([0.1], np.float32))])
    h = b.op("Div", [h, b.const(np.array([0.3], np.float32))])
    h = b.op("Gemm", [h, b.weight(hidden, features), b.weight(hidden)], transB=1)
    h = b.op("Relu", [h])
    h = b.op("Gemm", [h, b.weight(CLASSES, hidden), b.weight(CLASSES)], transB=1)
    if softmax:
        h = b.op("Softmax", [h], axis=1)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, features])
    return b.model(x, h, [batch, CLASSES], opset, inits_as_inputs=opset < 9)


def cnn_nhwc(opset: int = 11, side: int = 8, seed: int = 1) -> onnx.ModelProto:
    """NHWC input -> Transpose -> Sub/Div -> Conv/Relu -> Flatten -> Gemm (TF-exported shape)."""
    b = _Builder(seed)
    h = b.op("Transpose", ["input"], perm=[0, 3, 1, 2])
    h = b.op("Sub", [h, b.const(np.full((1, 1, 1, 1), 0.5, np.float32))])
    h = b.op("Div", [h, b.const(np.full((1, 1, 1, 1), 0.25, np.float32))])
    h = b.op("Conv", [h, b.weight(4, 1, 3, 3), b.weight(4)], pads=[1, 1, 1, 1],
             strides=[2, 2])
    h = b.op("Relu", [h])
    h = b.op("Flatten", [h], axis=1)
    half = (side + 1) // 2
    h = b.op("Gemm", [h, b.weight(CLASSES, 4 * half * half), b.weight(CLASSES)], transB=1)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, side, side, 1])
    return b.model(x, h, [1, CLASSES], opset, inits_as_inputs=opset < 9)


def cnn_reshape(opset: int = 9, side: int = 8, seed: int = 2,
                softmax: bool = True) -> onnx.ModelProto:
    """Conv/Relu/AveragePool/MaxPool, a constant Reshape to [1, -1], Gemm, Softmax."""
    b = _Builder(seed)
    h = b.op("Conv", ["input", b.weight(4, 1, 3, 3), b.weight(4)], pads=[1, 1, 1, 1])
    h = b.op("Relu", [h])
    h = b.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.op("Reshape", [h, b.const(np.array([1, -1], np.int64))])
    quarter = side // 4
    h = b.op("MatMul", [h, b.weight(4 * quarter * quarter, CLASSES)])
    h = b.op("Add", [h, b.weight(CLASSES)])
    if softmax:
        h = b.op("Softmax", [h], axis=1)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, side, side])
    return b.model(x, h, [1, CLASSES], opset, inits_as_inputs=opset < 9)


def mlp_unbatched(opset: int = 8, features: int = 16, seed: int = 3) -> onnx.ModelProto:
    """A 1-D input of features (no batch dimension) through MatMul/Add/Relu."""
    b = _Builder(seed)
    h = b.op("MatMul", ["input", b.weight(features, 12)])
    h = b.op("Add", [h, b.weight(12)])
    h = b.op("Relu", [h])
    h = b.op("MatMul", [h, b.weight(12, CLASSES)])
    h = b.op("Add", [h, b.weight(CLASSES)])
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [features])
    return b.model(x, h, [CLASSES], opset, inits_as_inputs=opset < 9)


def mlp_squashing(opset: int = 12, features: int = 20, seed: int = 4) -> onnx.ModelProto:
    """Sigmoid and Tanh activations, a Sigmoid head, symbolic batch."""
    b = _Builder(seed)
    h = b.op("MatMul", ["input", b.weight(features, 16)])
    h = b.op("Sigmoid", [b.op("Add", [h, b.weight(16)])])
    h = b.op("Tanh", [b.op("MatMul", [h, b.weight(16, 16)])])
    h = b.op("Sigmoid", [b.op("MatMul", [h, b.weight(16, CLASSES)])])
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", features])
    return b.model(x, h, ["N", CLASSES], opset)


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp_gemm_opset11": lambda: mlp_gemm(opset=11),
    "mlp_gemm_opset8_softmax": lambda: mlp_gemm(opset=8, softmax=True),
    "cnn_nhwc_opset11": lambda: cnn_nhwc(opset=11),
    "cnn_reshape_opset9": lambda: cnn_reshape(opset=9),
    "cnn_reshape_opset12": lambda: cnn_reshape(opset=12, softmax=False),
    "mlp_unbatched_opset8": lambda: mlp_unbatched(opset=8),
    "mlp_squashing_opset12": lambda: mlp_squashing(opset=12),
}


def seed_models() -> dict[str, bytes]:
    """Every benchmark-shaped seed, serialized."""
    return {name: build().SerializeToString() for name, build in SEEDS.items()}
