"""Reshape targets that bake in a fixed batch size, made batch-agnostic.

[1, -1] or [1, 512] from a fixed-batch export would mix or refuse the samples of a larger
batch. The first entry becomes -1 (or 0, "copy dim 0"), or, under allowzero=1, the other -1
is resolved from the known shape at the fixed batch. ``batch`` verifies the result.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def make_reshapes_dynamic(out: onnx.ModelProto, original: onnx.ModelProto,
                          fixed: int) -> list[str]:
    """Rewrite, in ``out``, the Reshape targets that bake in the fixed batch; what changed.

    ``original`` (the fixed-batch model) supplies the known input shape of each Reshape.
    """
    constants = {init.name: init for init in out.graph.initializer}
    for node in out.graph.node:
        if node.op_type == "Constant" and node.output:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            if attr is not None and attr.HasField("t"):
                constants[node.output[0]] = attr.t
    taken = {n for node in out.graph.node for n in (*node.input, *node.output)} | set(constants)
    known = _known_shapes(original)
    changed: list[str] = []
    for node in out.graph.node:
        if node.op_type == "Reshape" and len(node.input) >= 2 and node.input[1] in constants:
            target = numpy_helper.to_array(constants[node.input[1]])
            new = _dynamic_target(target, fixed, _allowzero(node), known.get(node.input[0]))
            if new is not None:
                # A new initializer (not a Constant node: Constant-1 cannot hold int64).
                name = _fresh(f"{node.input[1]}__batch", taken)
                out.graph.initializer.append(numpy_helper.from_array(new, name))
                if out.ir_version < 4:  # IR 3 lists every initializer as a graph input
                    out.graph.input.append(helper.make_tensor_value_info(
                        name, onnx.TensorProto.INT64, list(new.shape)))
                node.input[1] = name
                changed.append(f"{target.tolist()}->{new.tolist()}")
        elif node.op_type == "Reshape":  # Reshape-1/4 carries its target as an attribute
            for attr in node.attribute:
                if attr.name == "shape":
                    new = _dynamic_target(np.array(attr.ints, dtype=np.int64), fixed, False,
                                          None)
                    if new is not None:
                        changed.append(f"{list(attr.ints)}->{new.tolist()}")
                        attr.ints[:] = new.tolist()
    return changed


def _dynamic_target(target: np.ndarray, fixed: int, allowzero: bool,
                    data_shape: list[int] | None) -> np.ndarray | None:
    """The Reshape target with the fixed batch made implicit, or None when unsafe."""
    if target.ndim != 1 or target.size < 2 or target[0] != fixed:
        return None
    new = target.astype(np.int64).copy()
    rest = list(new[1:])
    if -1 not in rest:
        new[0] = -1  # the element count then recovers the batch
    elif not allowzero:
        new[0] = 0  # copy dim 0 of the input, which is the batch if anything is
    elif data_shape and data_shape[0] == fixed and 0 not in rest:
        # allowzero=1 (torch's dynamo exporter): resolve the other -1 from the known input
        # shape at the fixed batch, then let -1 stand for the batch.
        known = int(np.prod([d for d in rest if d != -1]))
        total = int(np.prod(data_shape))
        if known <= 0 or total % (fixed * known):
            return None
        new[1 + rest.index(-1)] = total // (fixed * known)
        new[0] = -1
    else:
        return None
    return new


def _known_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Fully known tensor shapes of the original (fixed-batch) model, by name."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # only an optimisation of the rewrite: without it, fewer rewrites
        return {}
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    return shapes


def _allowzero(node: onnx.NodeProto) -> bool:
    return any(a.name == "allowzero" and a.i for a in node.attribute)


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}{k}"
    taken.add(name)
    return name
