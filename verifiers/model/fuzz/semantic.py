"""Mutations that mostly keep a model valid but odd: they reach the later stages of intake
(batch rewrite, output-kind detection, the trial run) that structural damage never gets to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Rng = np.random.Generator


def _pick(rng: Rng, items: list):
    return items[int(rng.integers(0, len(items)))] if items else None


def _array(t: TensorProto) -> np.ndarray | None:
    """The tensor's values, or None when earlier mutations made them unreadable."""
    # numpy_helper.to_array FOLLOWS external-data paths: never call it on such a tensor.
    if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
        return None
    try:
        return numpy_helper.to_array(t).copy()
    except (ValueError, TypeError):
        return None


def nonfinite_weights(m: onnx.ModelProto, rng: Rng) -> None:
    floats = [t for t in m.graph.initializer if t.data_type == TensorProto.FLOAT]
    init = _pick(rng, floats)
    arr = _array(init) if init is not None else None
    if arr is not None and arr.size:
        arr.flat[int(rng.integers(0, arr.size))] = _pick(rng, [np.nan, np.inf, -np.inf,
                                                               3e38])
        init.CopyFrom(numpy_helper.from_array(arr, init.name))


def batch_dim(m: onnx.ModelProto, rng: Rng) -> None:
    for vi in (m.graph.input[:1], m.graph.output[:1])[int(rng.integers(0, 2))]:
        dims = vi.type.tensor_type.shape.dim
        if dims:
            choice = _pick(rng, [1, 2, 3, 7, "N", None])
            if choice is None:
                dims[0].Clear()
            elif isinstance(choice, str):
                dims[0].dim_param = choice
            else:
                dims[0].dim_value = choice


def swap_activation(m: onnx.ModelProto, rng: Rng) -> None:
    node = _pick(rng, [n for n in m.graph.node if n.op_type in
                       ("Relu", "Sigmoid", "Tanh", "Softmax", "Identity")])
    if node is not None:
        node.op_type = _pick(rng, ["Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
                                   "Identity", "Abs", "Neg"])
        del node.attribute[:]


def append_head(m: onnx.ModelProto, rng: Rng) -> None:
    """Softmax/LogSoftmax/Sigmoid, maybe followed by Identity/Flatten, after the output."""
    graph = m.graph
    if not graph.output or not graph.node:
        return
    final = graph.output[0].name
    producers = [n for n in graph.node if final in n.output]
    if not producers:
        return
    producers[0].output[list(producers[0].output).index(final)] = "pre_head"
    op = _pick(rng, ["Softmax", "LogSoftmax", "Sigmoid"])
    attrs = {"axis": int(_pick(rng, [1, -1, 0]))} if op != "Sigmoid" else {}
    tail = _pick(rng, [None, "Identity", "Flatten"])
    graph.node.append(helper.make_node(op, ["pre_head"], ["head" if tail else final], **attrs))
    if tail:
        graph.node.append(helper.make_node(tail, ["head"], [final]))


def reshape_target(m: onnx.ModelProto, rng: Rng) -> None:
    stored = {t.name: t for t in m.graph.initializer}
    node = _pick(rng, [n for n in m.graph.node if n.op_type == "Reshape" and len(n.input) > 1
                       and n.input[1] in stored])
    old = _array(stored[node.input[1]]) if node is not None else None
    if old is not None:
        size = int(np.prod(old[old > 0])) if old.size else 1
        new = _pick(rng, [[1, -1], [-1, size], [0, -1], [2, -1], [-1], [1, 1, -1]])
        stored[node.input[1]].CopyFrom(numpy_helper.from_array(np.array(new, np.int64),
                                                               node.input[1]))


def insert_dropout(m: onnx.ModelProto, rng: Rng) -> None:
    graph = m.graph
    node = _pick(rng, [n for n in graph.node if n.op_type in ("Relu", "Sigmoid", "Tanh")])
    if node is None:
        return
    out = node.output[0]
    node.output[0] = f"{out}_pre_dropout"
    flag = numpy_helper.from_array(np.array(bool(rng.integers(0, 2))), f"{out}_training")
    ratio = numpy_helper.from_array(np.array(0.5, np.float32), f"{out}_ratio")
    graph.initializer.extend([flag, ratio])
    graph.node.append(helper.make_node("Dropout", [node.output[0], ratio.name, flag.name],
                                       [out]))
    _topological(graph)


def _topological(graph: onnx.GraphProto) -> None:
    """Re-sort nodes after an append (Kahn's algorithm); leaves cycles for the checker."""
    nodes = list(graph.node)
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    while nodes:
        runnable = [n for n in nodes if all(i in ready for i in n.input)]
        if not runnable:
            ordered.extend(nodes)
            break
        for n in runnable:
            ordered.append(n)
            ready.update(n.output)
            nodes.remove(n)
    del graph.node[:]
    graph.node.extend(ordered)


SEMANTIC_MUTATIONS: dict[str, Callable[[onnx.ModelProto, Rng], None]] = {
    f.__name__: f for f in (nonfinite_weights, batch_dim, swap_activation, append_head,
                            reshape_target, insert_dropout)
}
