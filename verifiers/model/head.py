"""The classifier's score output: which graph output it is, and what it holds.

Attacks and bounds need logits; confidence metrics need probabilities. A model ending in
Softmax or LogSoftmax (possibly followed by Identity/Reshape/Flatten...) is recognised, and
``logits_graph`` cuts that head off so the torch conversion can return true logits instead
of log(softmax), whose gradient vanishes where the softmax saturates.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from verifiers.errors import IntakeError

FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16})
OUTPUT_KINDS = ("logits", "probabilities", "log_probabilities")
# Ops that move scores around without changing their values.
_PASS_THROUGH = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast",
                           "Dropout"})
_HEAD_KIND = {"Softmax": "probabilities", "LogSoftmax": "log_probabilities"}


def unzip_zipmap(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Replace a skl2onnx ZipMap output (a list of dicts) by the probability tensor it wraps.

    The exposed tensor is the one ZipMap reads, so the scores are unchanged. Returns the model
    and a note ("" when there was no ZipMap).
    """
    outputs = {o.name for o in model.graph.output}
    zipmaps = [n for n in model.graph.node if n.op_type == "ZipMap" and n.output
               and n.output[0] in outputs]
    if not zipmaps:
        return model, ""
    if len(zipmaps) > 1:
        raise IntakeError("model has several ZipMap outputs; export one probability output")
    (zipmap,) = zipmaps
    labels = next((list(a.ints) for a in zipmap.attribute if a.name == "classlabels_int64s"),
                  None)
    if labels is None or labels != list(range(len(labels))):
        raise IntakeError(
            "model ends in a ZipMap whose class labels are not 0..C-1; export the probability "
            "tensor instead: skl2onnx.to_onnx(clf, X, options={id(clf): {'zipmap': False}}) "
            "with integer labels 0..C-1")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep = [n for n in graph.node if not (n.op_type == "ZipMap" and n.output == zipmap.output)]
    del graph.node[:]
    graph.node.extend(keep)
    kept_outputs = [o for o in graph.output if o.name != zipmap.output[0]]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    graph.output.append(helper.make_tensor_value_info(zipmap.input[0], TensorProto.FLOAT,
                                                      [None, len(labels)]))
    note = (f"ZipMap output {zipmap.output[0]!r} replaced by the probability tensor "
            f"{zipmap.input[0]!r} it reads (export with options={{id(clf): {{'zipmap': False}}}} "
            "to skip this)")
    return out, note


def pick_output(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The single float tensor output that holds the class scores."""
    outputs = list(model.graph.output)
    if not outputs:
        raise IntakeError("model has no outputs")
    floats = [o for o in outputs if o.type.HasField("tensor_type")
              and o.type.tensor_type.elem_type in FLOAT_TYPES]
    if not floats:
        raise IntakeError("model has no float output to read class scores from")
    if len(floats) > 1:
        names = ", ".join(o.name for o in floats)
        raise IntakeError(f"model has several float outputs ({names}); export one score output")
    return floats[0]


def label_outputs(model: onnx.ModelProto) -> list[str]:
    """Integer tensor outputs (skl2onnx's predicted label), checked against the scores."""
    ints = {TensorProto.INT64, TensorProto.INT32}
    return [o.name for o in model.graph.output if o.type.HasField("tensor_type")
            and o.type.tensor_type.elem_type in ints]


def tail_node(model: onnx.ModelProto, output_name: str) -> onnx.NodeProto | None:
    """The last node that changes the output's values (pass-through ops skipped)."""
    producer = {out: node for node in model.graph.node for out in node.output if out}
    name = output_name
    for _ in range(len(model.graph.node) + 1):
        node = producer.get(name)
        if node is None or not node.input:
            return node
        if node.op_type not in _PASS_THROUGH or not _keeps_values(node):
            return node
        name = node.input[0]
    return None


def find_head(model: onnx.ModelProto, output_name: str) -> onnx.NodeProto | None:
    """The Softmax/LogSoftmax whose values reach the output through pass-through ops only."""
    node = tail_node(model, output_name)
    return node if node is not None and node.op_type in _HEAD_KIND else None


def structural_kind(model: onnx.ModelProto, output_name: str) -> str:
    head = find_head(model, output_name)
    return "logits" if head is None else _HEAD_KIND[head.op_type]


def numeric_kind(scores: np.ndarray, tol: float = 1e-3) -> str:
    """What rows of ``scores`` (N x C) look like: probabilities sum to 1, log-probs exp to 1."""
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        return "logits"
    rows = scores.reshape(len(scores), -1).astype(np.float64)
    if rows.min() >= -1e-6 and np.all(np.abs(rows.sum(axis=1) - 1.0) <= tol):
        return "probabilities"
    if rows.max() <= 1e-6 and np.all(np.abs(np.exp(rows).sum(axis=1) - 1.0) <= tol):
        return "log_probabilities"
    return "logits"


def logits_graph(model: onnx.ModelProto, output_kind: str,
                 output_name: str | None = None) -> tuple[onnx.ModelProto, bool]:
    """A copy reduced to the score output, holding logits; and whether a head was cut.

    Only the nodes the score output needs are kept (a skl2onnx label branch would stop the
    converter). A Softmax/LogSoftmax head becomes an Identity, so the output keeps its name
    and shape: the same runner and converter read it.
    """
    name = output_name or pick_output(model).name
    out = _pruned(model, name)
    head = find_head(out, name) if output_kind != "logits" else None
    if head is None or _HEAD_KIND[head.op_type] != output_kind:
        return out, False
    for node in out.graph.node:
        if list(node.output) == list(head.output) and node.op_type == head.op_type:
            node.op_type = "Identity"
            del node.attribute[:]
            del node.input[1:]
    return out, True


def _pruned(model: onnx.ModelProto, output_name: str) -> onnx.ModelProto:
    producer = {o: i for i, node in enumerate(model.graph.node) for o in node.output if o}
    keep: set[int] = set()
    stack = [output_name]
    while stack:
        i = producer.get(stack.pop())
        if i is not None and i not in keep:
            keep.add(i)
            stack.extend(x for x in model.graph.node[i].input if x)
    used = {x for i in keep for x in model.graph.node[i].input}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    nodes = [n for i, n in enumerate(graph.node) if i in keep]
    inits = [t for t in graph.initializer if t.name in used]
    stored = {t.name for t in graph.initializer}
    # The real input stays; initializers listed as inputs (IR 3) stay only if still used.
    inputs = [v for v in graph.input if v.name not in stored or v.name in used]
    outputs = [o for o in graph.output if o.name == output_name]
    for field, items in ((graph.node, nodes), (graph.initializer, inits), (graph.input, inputs),
                         (graph.output, outputs)):
        del field[:]
        field.extend(items)
    del graph.value_info[:]  # hints of removed or renamed tensors no longer apply
    return out


def _keeps_values(node: onnx.NodeProto) -> bool:
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        return to in FLOAT_TYPES
    return True
