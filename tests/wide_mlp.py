"""A sound 8x8-digits MLP of any size (64 -> H -> H -> 10): large weights with a tiny graph,
for what must hold however large a sound model is (validation caps, upload memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def wide_mlp(path: Path, hidden: int, seed: int | None = 0) -> Path:
    """Saved at ``path``: 4 * (64 H + H^2 + 10 H) bytes of float32 weights, random (``seed``)
    or zero (``seed=None``, quick to make at a gigabyte)."""
    rng = None if seed is None else np.random.default_rng(seed)

    def weight(name: str, shape: tuple[int, int]) -> onnx.TensorProto:
        values = (np.zeros(shape, np.float32) if rng is None
                  else rng.standard_normal(shape, np.float32) * 0.01)
        return numpy_helper.from_array(values, name)

    weights = [weight("w1", (64, hidden)), weight("w2", (hidden, hidden)),
               weight("w3", (hidden, 10)),
               numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")]
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "w1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"]),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("MatMul", ["r2", "w3"], ["logits"])]
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                      ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path
