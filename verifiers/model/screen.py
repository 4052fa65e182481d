"""Python-side screening of a parsed model, run BEFORE the C++ checker and runtime see it.

Each rule refuses a class of upload that is unsafe (file references, unbounded compute or
memory) or that the service cannot analyse (custom ops, control flow, randomness).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import onnx
from onnx import AttributeProto, TensorProto

from verifiers.errors import IntakeError
from verifiers.model.limits import IntakeLimits

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                        "RandomUniformLike", "Multinomial", "Bernoulli"})
_GRAPH_ATTRS = (AttributeProto.GRAPH, AttributeProto.GRAPHS)
# Bytes per element of the types whose raw_data length can be checked exactly.
ITEMSIZE = {TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
             TensorProto.BFLOAT16: 2, TensorProto.INT64: 8, TensorProto.INT32: 4,
             TensorProto.INT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1,
             TensorProto.UINT16: 2, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
             TensorProto.BOOL: 1}


def screen(model: onnx.ModelProto, limits: IntakeLimits, *, external: bool = False) -> None:
    """Every structural refusal that needs no shape inference; raises IntakeError.

    ``external``: the graph came in a bundle (verifiers.model.bundle), which checks its
    external references itself; anywhere else a reference to a file is refused."""
    graph = model.graph
    if not graph.node and not graph.output:
        raise IntakeError("model is not a valid ONNX protobuf: it has no graph")
    if len(model.functions):
        raise IntakeError("model defines local functions; inline them before upload")
    if len(graph.node) > limits.max_nodes:
        raise IntakeError(f"model has {len(graph.node)} nodes, over the limit of "
                          f"{limits.max_nodes}")
    for node in graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise IntakeError(f"node {node.name!r} uses custom op {node.domain}::{node.op_type}, "
                              "which the service cannot run")
        if any(a.type in _GRAPH_ATTRS or a.HasField("g") or len(a.graphs)
               for a in node.attribute):
            # Loop/Scan can run unbounded compute, and no analysis here follows subgraphs.
            raise IntakeError(f"node {node.name!r} ({node.op_type}) has a subgraph: control "
                              "flow (If/Loop/Scan) is not supported, export a feed-forward graph")
    _refuse_bad_opsets(model)
    if not external:
        _refuse_external_data(model)
    for tensor in all_tensors(model):
        if not (external and _is_external(tensor)):
            _check_tensor(tensor, limits)
        else:
            _check_dims(tensor, limits)
    for value_info in [*graph.input, *graph.output, *graph.value_info]:
        _check_declared_shape(value_info, limits)


def random_ops_on_path(model: onnx.ModelProto, output_name: str) -> list[str]:
    """Nodes whose randomness reaches ``output_name`` (Dropout counts only in training mode)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output if out}
    constants = _constant_values(model)
    opset = main_opset(model)
    found: list[str] = []
    seen: set[str] = set()
    stack = [output_name]
    while stack:
        name = stack.pop()
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        label = f"{node.op_type} {node.name!r}"
        if node.op_type in RANDOM_OPS or (node.op_type == "Dropout"
                                          and _dropout_trains(node, constants, opset)):
            found.append(label)
        stack.extend(i for i in node.input if i)
    return found


def main_opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _dropout_trains(node: onnx.NodeProto, constants: dict[str, TensorProto],
                    opset: int) -> bool:
    if opset < 7:  # Dropout-1/6: attribute is_test=0 means training behaviour
        is_test = next((a.i for a in node.attribute if a.name == "is_test"), 0)
        return is_test == 0
    if len(node.input) < 3 or not node.input[2]:
        return False  # Dropout-12+: no training_mode input means inference
    flag = constants.get(node.input[2])
    if flag is None:
        return True  # computed at run time: it might be true
    return bool(onnx.numpy_helper.to_array(flag).any())


def _constant_values(model: onnx.ModelProto) -> dict[str, TensorProto]:
    values = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None and attr.HasField("t"):
                values[node.output[0]] = attr.t
    return values


def _refuse_bad_opsets(model: onnx.ModelProto) -> None:
    newest = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and not 1 <= entry.version <= newest:
            raise IntakeError(f"model imports opset {entry.version}; supported opsets are "
                              f"1..{newest}")


def _refuse_external_data(model: onnx.ModelProto) -> None:
    # A tensor stored "outside" the protobuf names a file path: path traversal (CVE-2022-25882).
    for tensor in all_tensors(model):
        if _is_external(tensor):
            raise IntakeError(
                f"tensor {tensor.name!r} references external data; upload a self-contained "
                "model (onnx.save with save_as_external_data=False), or the graph and its "
                "data files together as one zip bundle"
            )


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def all_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    graph = model.graph
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices


def _check_dims(tensor: TensorProto, limits: IntakeLimits) -> int:
    """The declared element count, refused when negative or over the cap."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise IntakeError(f"tensor {tensor.name!r} declares negative dimensions {dims}")
    count = math.prod(dims)
    if count > limits.max_tensor_elements:
        raise IntakeError(f"tensor {tensor.name!r} declares {count} elements, over the limit "
                          f"of {limits.max_tensor_elements}")
    return count


def _check_tensor(tensor: TensorProto, limits: IntakeLimits) -> None:
    dims = list(tensor.dims)
    count = _check_dims(tensor, limits)
    itemsize = ITEMSIZE.get(tensor.data_type)
    if tensor.HasField("raw_data") and itemsize is not None:
        stored = len(tensor.raw_data) // itemsize
        exact = len(tensor.raw_data) % itemsize == 0
    elif itemsize is not None:
        stored, exact = (len(tensor.float_data) + len(tensor.int32_data)
                         + len(tensor.int64_data) + len(tensor.double_data)
                         + len(tensor.uint64_data)), True
    else:
        return  # strings, complex, sub-byte types: left to the checker
    if stored != count or not exact:
        raise IntakeError(f"tensor {tensor.name!r} declares shape {dims} ({count} elements) "
                          f"but stores data for {stored}")


def _check_declared_shape(value_info: onnx.ValueInfoProto, limits: IntakeLimits) -> None:
    if not value_info.type.HasField("tensor_type"):
        return
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and not 0 <= dim.dim_value <= limits.max_dim:
            raise IntakeError(f"value {value_info.name!r} declares dimension {dim.dim_value}, "
                              f"outside 0..{limits.max_dim}")


def refuse_huge_activations(model: onnx.ModelProto, limits: IntakeLimits) -> None:
    """Refuse graphs whose inferred tensors exceed the cap (Expand/Tile/ConstantOfShape bombs).

    onnxruntime folds constants when it opens a session, so this must run before it. Unknown
    dims (a symbolic batch) count as 1: the cap then bounds the per-sample size.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                     data_prop=True)
    except Exception as exc:  # already passed the checker; a failure here is a refusal too
        raise IntakeError(f"shape inference failed: {str(exc).splitlines()[0][:200]}") from exc
    graph = inferred.graph
    for value_info in [*graph.value_info, *graph.output]:
        if not value_info.type.HasField("tensor_type"):
            continue
        dims = [d.dim_value for d in value_info.type.tensor_type.shape.dim
                if d.HasField("dim_value")]
        if any(d < 0 for d in dims):
            raise IntakeError(f"tensor {value_info.name!r} has inferred negative dims {dims}")
        if math.prod(dims) > limits.max_tensor_elements:
            raise IntakeError(f"tensor {value_info.name!r} would have shape {dims}, over the "
                              f"limit of {limits.max_tensor_elements} elements")
