"""Seeded mutations of valid ONNX models: what a careless or hostile upload looks like.

Proto-level mutations keep the serialization parseable and lie in the fields the checker and
the runtime trust (dims, dtypes, edges, attributes, opsets...); ``corrupt`` damages bytes.
Every choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from verifiers.model.fuzz.corrupt import BYTE_MUTATIONS
from verifiers.model.fuzz.semantic import SEMANTIC_MUTATIONS

Rng = np.random.Generator
HUGE = (0, -1, -(2**31), 2**31, 2**40, 2**62, 7_000_000_001)
STRANGE_OPS = ("RandomNormal", "RandomUniformLike", "Bernoulli", "Dropout", "Loop", "If",
               "ConstantOfShape", "Expand", "Tile", "Resize", "NonZero", "Unique", "TopK",
               "Softmax", "NotAnOp", "Einsum", "Gather", "ScatterND", "CumSum", "Range")


@dataclass(frozen=True)
class FuzzCase:
    index: int
    seed_name: str
    mutations: tuple[str, ...]
    data: bytes


def _pick(rng: Rng, items: list):
    return items[int(rng.integers(0, len(items)))] if items else None


def _value_infos(m: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [*m.graph.input, *m.graph.output, *m.graph.value_info]


def oversized_dim(m: onnx.ModelProto, rng: Rng) -> None:
    vi = _pick(rng, [v for v in _value_infos(m) if v.type.tensor_type.shape.dim])
    if vi is not None:
        dim = _pick(rng, list(vi.type.tensor_type.shape.dim))
        dim.dim_value = int(_pick(rng, list(HUGE)))


def wrong_dtype(m: onnx.ModelProto, rng: Rng) -> None:
    targets = [*(v.type.tensor_type for v in _value_infos(m)), *m.graph.initializer]
    target = _pick(rng, targets)
    new = int(rng.integers(0, 32))
    if isinstance(target, TensorProto):
        target.data_type = new
    elif target is not None:
        target.elem_type = new


def cycle(m: onnx.ModelProto, rng: Rng) -> None:
    nodes = m.graph.node
    if len(nodes) >= 2:
        i, j = sorted(int(v) for v in rng.choice(len(nodes), 2, replace=False))
        if nodes[i].input:
            nodes[i].input[0] = nodes[j].output[0]


def dangling_input(m: onnx.ModelProto, rng: Rng) -> None:
    node = _pick(rng, list(m.graph.node))
    if node is not None and node.input:
        node.input[int(rng.integers(0, len(node.input)))] = "ghost_tensor"


def huge_tensor_claim(m: onnx.ModelProto, rng: Rng) -> None:
    init = _pick(rng, list(m.graph.initializer))
    if init is not None:
        dims = list(init.dims) or [1]
        dims[int(rng.integers(0, len(dims)))] = int(_pick(rng, [2**20, 2**31, 2**40, -3, 0]))
        init.ClearField("dims")
        init.dims.extend(dims)


def corrupt_raw_data(m: onnx.ModelProto, rng: Rng) -> None:
    init = _pick(rng, [t for t in m.graph.initializer if t.HasField("raw_data")])
    if init is not None:
        init.raw_data = rng.bytes(int(rng.integers(0, len(init.raw_data) + 9)))


def drop_initializer(m: onnx.ModelProto, rng: Rng) -> None:
    if m.graph.initializer:
        del m.graph.initializer[int(rng.integers(0, len(m.graph.initializer)))]


def swap_op(m: onnx.ModelProto, rng: Rng) -> None:
    node = _pick(rng, list(m.graph.node))
    if node is not None:
        node.op_type = _pick(rng, list(STRANGE_OPS))


def custom_domain(m: onnx.ModelProto, rng: Rng) -> None:
    node = _pick(rng, list(m.graph.node))
    if node is not None:
        node.domain = _pick(rng, ["com.evil", "com.microsoft", "ai.onnx.ml", "ai.onnx.preview"])


def external_data(m: onnx.ModelProto, rng: Rng) -> None:
    init = _pick(rng, list(m.graph.initializer))
    if init is not None:
        init.data_location = TensorProto.EXTERNAL
        entry = init.external_data.add()
        entry.key, entry.value = "location", _pick(rng, ["../../../../etc/passwd",
                                                          "/proc/self/environ", "weights.bin"])


def attribute_extreme(m: onnx.ModelProto, rng: Rng) -> None:
    attrs = [a for n in m.graph.node for a in n.attribute if a.type in (2, 7)]
    attr = _pick(rng, attrs)
    if attr is None:
        return
    if attr.type == onnx.AttributeProto.INT:
        attr.i = int(_pick(rng, list(HUGE)))
    else:
        size = int(rng.integers(0, 6))
        attr.ints[:] = [int(_pick(rng, list(HUGE))) for _ in range(size)]


def opset_version(m: onnx.ModelProto, rng: Rng) -> None:
    if m.opset_import:
        m.opset_import[0].version = int(_pick(rng, [-1, 0, 1, 5, 7, 15, 23, 29, 40, 10**6]))


def ir_version(m: onnx.ModelProto, rng: Rng) -> None:
    m.ir_version = int(_pick(rng, [-1, 0, 1, 2, 3, 11, 99, 2**40]))


def extra_input(m: onnx.ModelProto, rng: Rng) -> None:
    dtype = int(_pick(rng, [TensorProto.FLOAT, TensorProto.INT64, TensorProto.STRING]))
    m.graph.input.append(helper.make_tensor_value_info("extra", dtype, [1, 3]))


def remove_inputs(m: onnx.ModelProto, rng: Rng) -> None:
    del m.graph.input[:]


def shuffle_nodes(m: onnx.ModelProto, rng: Rng) -> None:
    nodes = list(m.graph.node)
    order = rng.permutation(len(nodes))
    del m.graph.node[:]
    m.graph.node.extend(nodes[int(i)] for i in order)


def remove_node(m: onnx.ModelProto, rng: Rng) -> None:
    if m.graph.node:
        del m.graph.node[int(rng.integers(0, len(m.graph.node)))]


def rename_output(m: onnx.ModelProto, rng: Rng) -> None:
    if m.graph.output:
        m.graph.output[0].name = _pick(rng, ["nowhere", "input", ""])


def memory_bomb(m: onnx.ModelProto, rng: Rng) -> None:
    """A constant-shaped ConstantOfShape/Expand/Tile, astronomically large, summed into the
    output so that it lies on the path the runtime must evaluate."""
    graph = m.graph
    if not graph.node or not graph.node[-1].output or not graph.input:
        return
    shape = numpy_helper.from_array(np.array([2**16, 2**16, 2**10], np.int64), "bomb_shape")
    ones = numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "bomb_one")
    graph.initializer.extend([shape, ones])
    op = _pick(rng, ["ConstantOfShape", "Expand", "Tile"])
    inputs = ["bomb_shape"] if op == "ConstantOfShape" else ["bomb_one", "bomb_shape"]
    last = graph.node[-1]
    final, last.output[0] = last.output[0], "bomb_pre"
    graph.node.extend([helper.make_node(op, inputs, ["bomb"]),
                       helper.make_node("ReduceSum", ["bomb"], ["bomb_sum"], keepdims=0),
                       helper.make_node("Add", ["bomb_pre", "bomb_sum"], [final])])


def local_function(m: onnx.ModelProto, rng: Rng) -> None:
    fn = helper.make_function("local", "Twice", ["x"], ["y"],
                              [helper.make_node("Add", ["x", "x"], ["y"])],
                              [helper.make_opsetid("", 13)])
    m.functions.append(fn)


def subgraph_node(m: onnx.ModelProto, rng: Rng) -> None:
    body = helper.make_graph([], "empty", [], [])
    node = _pick(rng, list(m.graph.node))
    if node is not None:
        node.attribute.append(helper.make_attribute("then_branch", body))


def sparse_initializer(m: onnx.ModelProto, rng: Rng) -> None:
    values = numpy_helper.from_array(np.ones(3, np.float32), "sparse_w")
    indices = numpy_helper.from_array(
        np.array([0, int(_pick(rng, list(HUGE))), 5], np.int64), "sparse_w_idx")
    sparse = helper.make_sparse_tensor(values, indices, [int(rng.integers(1, 10))])
    m.graph.sparse_initializer.append(sparse)


def bad_value_info(m: onnx.ModelProto, rng: Rng) -> None:
    node = _pick(rng, list(m.graph.node))
    if node is not None and node.output:
        dims = [int(_pick(rng, [1, 3, 2**33, 0])) for _ in range(int(rng.integers(0, 5)))]
        m.graph.value_info.append(helper.make_tensor_value_info(
            node.output[0], int(rng.integers(1, 17)), dims))


PROTO_MUTATIONS: dict[str, Callable[[onnx.ModelProto, Rng], None]] = {
    f.__name__: f for f in (
        oversized_dim, wrong_dtype, cycle, dangling_input, huge_tensor_claim, corrupt_raw_data,
        drop_initializer, swap_op, custom_domain, external_data, attribute_extreme,
        opset_version, ir_version, extra_input, remove_inputs, shuffle_nodes, remove_node,
        rename_output, memory_bomb, local_function, subgraph_node, sparse_initializer,
        bad_value_info)
} | SEMANTIC_MUTATIONS


def make_cases(seeds: dict[str, bytes], n: int, seed: int = 0) -> list[FuzzCase]:
    """``n`` cases: 1-3 stacked proto mutations, then a byte mutation one time in four."""
    rng = np.random.default_rng(seed)
    names = sorted(seeds)
    proto_names, byte_names = sorted(PROTO_MUTATIONS), sorted(BYTE_MUTATIONS)
    cases = []
    for index in range(n):
        seed_name = names[int(rng.integers(0, len(names)))]
        model = onnx.ModelProto.FromString(seeds[seed_name])
        applied = []
        for _ in range(int(rng.integers(0 if index % 8 == 0 else 1, 4))):
            name = proto_names[int(rng.integers(0, len(proto_names)))]
            PROTO_MUTATIONS[name](model, rng)
            applied.append(name)
        data = model.SerializeToString()
        if rng.random() < 0.25:
            name = byte_names[int(rng.integers(0, len(byte_names)))]
            data = BYTE_MUTATIONS[name](data, rng)
            applied.append(name)
        cases.append(FuzzCase(index, seed_name, tuple(applied), data))
    return cases
