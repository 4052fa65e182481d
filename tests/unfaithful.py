"""A model whose torch conversion disagrees with onnxruntime by design, not by float noise.

After the first ReLU of a conv net, :func:`make_unfaithful` splices an upsample-then-subsample
pair: ``Resize`` by ``k`` (mode ``linear``, ``coordinate_transformation_mode=asymmetric``) and a
``Slice`` that keeps every k-th row and column. Under the ONNX specification output pixel ``k*i``
of an asymmetric resize samples input pixel ``i`` exactly (interpolation weight 0), so the pair
is the identity and onnxruntime's predictions are the original model's. onnx2pytorch 0.6.0 drops
``coordinate_transformation_mode`` (it only warns) and interpolates with half-pixel centres, so
in the converted module every hidden feature becomes ``(k+1)/(2k) * f[i] + (k-1)/(2k) * f[i-1]``
along both axes (0.625 / 0.375 for k = 4): a blur that moves hidden activations by O(1) relative
to their size, on every CPU, whatever its kernels.

Measured (k = 4) on digits CNNs trained here, 300 evaluation points: max |onnxruntime - torch|
on the logits 11-13, about a quarter of the logit range (40-46); onnxruntime's accuracy is the
original model's, the converted module's argmax differs on 14% of the points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

PREFIX = "unfaithful_"


def make_unfaithful(source: Path, target: Path, factor: int = 4) -> Path:
    """Copy of the ONNX model at ``source`` with the Resize/Slice pair after its first Relu."""
    model = onnx.load(str(source))
    graph = model.graph
    position, relu = next((i, n) for i, n in enumerate(graph.node) if n.op_type == "Relu")
    hidden = relu.output[0]
    resized, kept = PREFIX + "resized", PREFIX + "kept"
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1, 1, factor, factor], np.float32),
                                PREFIX + "scales"),
        numpy_helper.from_array(np.array([0, 0], np.int64), PREFIX + "starts"),
        numpy_helper.from_array(np.array([1 << 30, 1 << 30], np.int64), PREFIX + "ends"),
        numpy_helper.from_array(np.array([2, 3], np.int64), PREFIX + "axes"),
        numpy_helper.from_array(np.array([factor, factor], np.int64), PREFIX + "steps"),
    ])
    for node in graph.node[position + 1:]:   # every reader of the ReLU now reads the pair
        node.input[:] = [kept if name == hidden else name for name in node.input]
    spliced = [
        helper.make_node("Resize", [hidden, "", PREFIX + "scales"], [resized],
                         name=PREFIX + "resize", mode="linear",
                         coordinate_transformation_mode="asymmetric"),
        helper.make_node("Slice", [resized, PREFIX + "starts", PREFIX + "ends",
                                   PREFIX + "axes", PREFIX + "steps"], [kept],
                         name=PREFIX + "subsample"),
    ]
    for offset, node in enumerate(spliced, start=1):
        graph.node.insert(position + offset, node)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))
    return target


def conversion_gap(path: Path, x: np.ndarray) -> tuple[float, float]:
    """(max |onnxruntime - torch| over the logits of ``x``, max - min of onnxruntime's logits),
    measured here, not through the fidelity check (whose yardstick may change)."""
    import torch

    from verifiers.model import load_model, to_torch

    loaded = load_model(path)
    module = to_torch(loaded.proto, loaded.info.output_kind, torch.device("cpu"))
    reference = loaded.runner.run(x).astype(np.float64)
    with torch.no_grad():
        converted = module(torch.from_numpy(x)).numpy().astype(np.float64)
    return float(np.abs(reference - converted).max()), float(reference.max() - reference.min())
