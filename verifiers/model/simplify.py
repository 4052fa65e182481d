"""Graph clean-ups that help the torch converter without changing any value.

onnx2pytorch reads weights only from initializers: a Conv whose bias arrives through an
Identity of an initializer (TorchScript exports share one zero bias this way after folding
BatchNorm) is otherwise converted with the bias as a second runtime input, and fails.
"""

from __future__ import annotations

import onnx


def fold_constant_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which Identity(initializer) nodes are bypassed (consumers read the source)."""
    stored = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {n.output[0]: n.input[0] for n in model.graph.node
             if n.op_type == "Identity" and n.input and n.input[0] in stored
             and n.output and n.output[0] not in outputs}
    if not alias:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [n for n in out.graph.node if not (n.op_type == "Identity" and n.output
                                               and n.output[0] in alias)]
    for node in kept:
        node.input[:] = [alias.get(name, name) for name in node.input]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    return out
