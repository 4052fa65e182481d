"""ONNX model -> the bound engine's graph IR.

Only nodes that depend on the model input become graph nodes; everything else (initializers,
Constant nodes, shape arithmetic) is folded to constants with the ONNX reference runtime.
``Shape`` of an input-dependent tensor folds to its shape for a batch of one: the engine runs
every op per sample, so batch-size arithmetic in exported graphs needs no special case.
A trailing Softmax/LogSoftmax is dropped: bounds are on the logits (same argmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import Tensor

from verifiers.bounds.ops import BoundOp, NodeSpec, build_op
from verifiers.errors import IntakeError, UnsupportedOpError, VerifierError
from verifiers.interrupt import checkpoint

_HEADS = {"Softmax", "LogSoftmax"}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
_STANDARD_DOMAINS = {"", "ai.onnx"}
# Folding these to constants would freeze one random draw: refuse them instead.
_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
           "Multinomial", "Bernoulli"}


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: BoundOp
    inputs: tuple[str, ...]  # the input-dependent inputs, in slot order
    output: str
    shape: tuple[int, ...]  # per-sample output shape


@dataclass
class BoundGraph:
    input_name: str
    input_shape: tuple[int, ...]  # per sample
    nodes: list[GraphNode]  # topological order
    output: str
    output_shape: tuple[int, ...]
    stripped_head: str  # e.g. "Softmax at node 'prob'", or "" when bounds are on the output
    exact_ibp: frozenset[str]  # tensors whose interval bounds are already exact
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    @property
    def num_outputs(self) -> int:
        return math.prod(self.output_shape)

    def shape_of(self, tensor: str) -> tuple[int, ...]:
        if tensor == self.input_name:
            return self.input_shape
        return next(n.shape for n in self.nodes if n.output == tensor)

    def bounded_tensors(self) -> dict[str, list[GraphNode]]:
        """Tensors whose bounds some op needs for its relaxation -> those consumer nodes."""
        out: dict[str, list[GraphNode]] = {}
        for node in self.nodes:
            if node.op.needs_bounds:
                for name in dict.fromkeys(node.inputs):  # e.g. both operands of Max
                    out.setdefault(name, []).append(node)
        return out

    def upstream(self, tensor: str) -> set[str]:
        """The node outputs ``tensor`` depends on (itself included)."""
        needed = {tensor}
        for node in reversed(self.nodes):
            if node.output in needed:
                needed.update(node.inputs)
        return needed - {self.input_name}

    def position(self, tensor: str) -> int:
        """Index of the node producing ``tensor`` (-1 for the model input)."""
        if tensor == self.input_name:
            return -1
        return next(i for i, n in enumerate(self.nodes) if n.output == tensor)

    def values(self, x: Tensor) -> dict[str, Tensor]:
        """Every tensor of the graph for input ``x`` (batched)."""
        values = {self.input_name: x}
        for node in self.nodes:
            checkpoint()  # a deep model's forward pass is long enough to need a check
            values[node.output] = node.op.forward(*(values[i] for i in node.inputs))
        return values

    def forward(self, x: Tensor) -> Tensor:
        return self.values(x)[self.output]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> BoundGraph:
        self.device, self.dtype = torch.device(device), dtype
        for node in self.nodes:
            node.op.to(self.device, dtype)
        return self


def build_graph(model: onnx.ModelProto, output: str | None = None) -> BoundGraph:
    """Parse, fold and type every op that ``output`` (default: the only float output) depends
    on; raises UnsupportedOpError naming the first node without a relaxation."""
    graph = model.graph
    output = output or _float_output(model)
    opset = max((o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS),
                default=13)
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise IntakeError(f"model must have exactly one input, it has {len(inputs)}")
    input_name, input_shape = inputs[0].name, _sample_shape(inputs[0])
    shapes: dict[str, tuple[int, ...]] = {input_name: input_shape}
    nodes: list[GraphNode] = []
    heads: dict[str, tuple[onnx.NodeProto, str]] = {}
    dead: dict[str, onnx.NodeProto] = {}  # secondary outputs of input-dependent nodes
    for node in _needed_nodes(graph, output):
        _check_inputs(node, consts, shapes, heads, dead)
        if node.domain not in _STANDARD_DOMAINS:
            raise UnsupportedOpError(node.op_type, node.name, f"custom domain {node.domain!r}")
        if node.op_type in _RANDOM:
            raise UnsupportedOpError(node.op_type, node.name, "random values cannot be bounded")
        perturbed = [bool(n) and n in shapes for n in node.input]
        if node.op_type == "Identity" and node.input[0] in heads:
            heads[node.output[0]] = heads[node.input[0]]
        elif not any(perturbed):
            _fold(node, consts, opset)
        elif node.op_type == "Shape":
            consts[node.output[0]] = _shape_value(node, shapes[node.input[0]])
        elif node.op_type in _HEADS:
            heads[node.output[0]] = (node, node.input[0])
        else:
            built = _build(node, consts, shapes, opset)
            for graph_node in built:
                nodes.append(graph_node)
                shapes[graph_node.output] = graph_node.shape
            dead.update({o: node for o in node.output[len(built):] if o})
    output, stripped = _strip_heads(output, shapes, heads, dead)
    nodes = _ancestors(nodes, output)
    return BoundGraph(input_name, input_shape, nodes, output, shapes[output], stripped,
                      _exact_tensors(input_name, nodes))


def _sample_shape(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    dims = value_info.type.tensor_type.shape.dim
    sample = [d.dim_value if d.HasField("dim_value") else 0 for d in dims][1:]
    if len(dims) < 2 or any(d <= 0 for d in sample):
        raise IntakeError(
            f"model input {value_info.name!r} needs a batch dimension and a fixed sample shape")
    return tuple(int(d) for d in sample)


def _check_inputs(node: onnx.NodeProto, consts: dict, shapes: dict, heads: dict,
                  dead: dict) -> None:
    for name in node.input:
        if not name:
            continue
        if name in heads:
            if node.op_type == "Identity":
                continue
            head = heads[name][0]
            raise UnsupportedOpError(head.op_type, head.name, "only supported as the last layer")
        if name in dead:
            raise UnsupportedOpError(dead[name].op_type, dead[name].name,
                                     f"secondary output {name!r} is used")
        if name not in consts and name not in shapes:
            raise IntakeError(f"node {node.name!r} reads {name!r} before it is computed")


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray], opset: int) -> None:
    feeds = {n: consts[n] for n in node.input if n}
    try:
        outs = ReferenceEvaluator(node, opsets={"": opset}).run(None, feeds)
    except Exception as exc:  # the reference runtime raises anything on a bad node
        raise UnsupportedOpError(node.op_type, node.name,
                                 f"constant folding failed: {type(exc).__name__}: {exc}") from exc
    for name, value in zip(node.output, outs, strict=False):
        if name:
            consts[name] = np.asarray(value)


def _shape_value(node: onnx.NodeProto, sample: tuple[int, ...]) -> np.ndarray:
    full = np.array([1, *sample], dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    return full[attrs.get("start", 0):attrs.get("end", len(full))]


def _build(node: onnx.NodeProto, consts: dict, shapes: dict, opset: int) -> list[GraphNode]:
    """One graph node per output the op relaxes (a builder may return one op per output, as
    Split does); outputs beyond those are secondary and refused if used."""
    slots = [n if n else "" for n in node.input]
    spec = NodeSpec(
        node=node,
        consts=tuple(None if n in shapes else consts.get(n) for n in slots),
        shapes=tuple(shapes.get(n) if n else None for n in slots),
        opset=opset,
    )
    inputs = tuple(n for n in slots if n in shapes)
    built = []
    try:
        ops = build_op(spec)
        ops = ops if isinstance(ops, list) else [ops]
        probes = [torch.zeros(1, *shapes[n]) for n in inputs]
        outs = [op.forward(*probes) for op in ops]
    except VerifierError:
        raise
    except Exception as exc:  # a malformed attribute or shape surfaces as any torch error
        raise spec.refuse(f"{type(exc).__name__}: {exc}") from exc
    for i, (op, out) in enumerate(zip(ops, outs, strict=True)):
        if out.dim() == 0 or out.shape[0] != 1:
            raise spec.refuse("output mixes the samples of a batch")
        name = spec.name if i == 0 else f"{spec.name}:{i}"
        built.append(GraphNode(name, op, inputs, node.output[i], tuple(out.shape[1:])))
    return built


def _float_output(model: onnx.ModelProto) -> str:
    floats = [o.name for o in model.graph.output
              if o.type.tensor_type.elem_type in _FLOAT_TYPES]
    if len(floats) != 1:
        raise IntakeError(f"model must have exactly one float output, it has {len(floats)}")
    return floats[0]


def _needed_nodes(graph: onnx.GraphProto, output: str) -> list[onnx.NodeProto]:
    """The nodes ``output`` depends on, in their (topological) file order."""
    needed, keep = {output}, []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            keep.append(node)
            needed.update(n for n in node.input if n)
    return keep[::-1]


def _strip_heads(output: str, shapes: dict, heads: dict, dead: dict) -> tuple[str, str]:
    stripped = []
    while output in heads:
        head, output = heads[output]
        stripped.append(f"{head.op_type} at node {head.name or head.output[0]!r}")
    if output in dead:
        raise UnsupportedOpError(dead[output].op_type, dead[output].name,
                                 "secondary output is the model output")
    if output not in shapes:
        raise IntakeError("model output does not depend on its input")
    return output, ", ".join(stripped)


def _ancestors(nodes: list[GraphNode], output: str) -> list[GraphNode]:
    needed, kept = {output}, []
    for node in reversed(nodes):
        if node.output in needed:
            kept.append(node)
            needed.update(node.inputs)
    return kept[::-1]


def _exact_tensors(input_name: str, nodes: list[GraphNode]) -> frozenset[str]:
    """IBP is exact through elementwise/shape ops and at most one mixing linear op, and per
    neuron through an elementwise function with an exact interval after those."""
    mixing: dict[str, int | None] = {input_name: 0}
    for node in nodes:
        kind = node.op.linear_kind
        before = mixing.get(node.inputs[0]) if len(node.inputs) == 1 else None
        if before is not None and kind is None and node.op.exact_pointwise:
            mixing[node.output] = max(before, 1)  # exact per neuron; one more mix breaks it
        elif kind is None or before is None:
            mixing[node.output] = None
        else:
            mixing[node.output] = before + (kind == "mixing")
    return frozenset(t for t, m in mixing.items() if m is not None and m <= 1)
