"""Input units: how a model's inputs map to the domain a standard measures its eps in.

A standard declares its input domain (pixels in [0, 1], say); a submission declares how the
model's own input units map to it, per channel: ``pixel = z * std + mean``. The evaluation
set (in model units) is mapped into the standard's units, and the model gets the inverse map
as ONNX nodes in front of its graph, so onnxruntime, the torch conversion, the attacks, the
bounds and the re-check all work in the standard's units on one graph. Nothing is guessed:
data outside the standard's domain after the mapping is refused, naming what fixes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from verifiers.diskarrays import map_blocks
from verifiers.errors import DataError, IntakeError

FIX_HINT = ("if the model takes normalised inputs, declare how they map to the standard's "
            "units: --mean M --std S (API fields input_mean, input_std; pixel = z * std + "
            "mean, one number or one per channel)")


@dataclass(frozen=True)
class InputMapping:
    """``standard units = model units * std + mean``, per channel (or one value for all)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std):
            raise DataError(f"input_mean and input_std need the same number of values (one, "
                            f"or one per channel), got {len(self.mean)} and {len(self.std)}")
        if not all(math.isfinite(v) for v in (*self.mean, *self.std)):
            raise DataError("input_mean and input_std must be finite numbers")
        if any(s <= 0 for s in self.std):
            raise DataError(f"input_std must be > 0, got {list(self.std)}")

    @property
    def identity(self) -> bool:
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def as_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std),
                "formula": "standard units = model input * std + mean"}

    def axis(self, sample_shape: Sequence[int]) -> int | None:
        """The channel axis of a batch (1 = first after the batch dimension), None for one
        value for all. NCHW first; the last axis when only it has that many entries."""
        k = len(self.mean)
        if k == 1:
            return None
        if len(sample_shape) >= 1 and sample_shape[0] == k:
            return 1
        if len(sample_shape) >= 2 and sample_shape[-1] == k:
            return len(sample_shape)
        raise DataError(f"{k} per-channel values given, but the samples have shape "
                        f"{list(sample_shape)}: no channel axis (first or last) has {k} entries")

    def _broadcast(self, values: tuple[float, ...], sample_shape: Sequence[int]) -> np.ndarray:
        axis = self.axis(sample_shape)
        if axis is None:
            return np.asarray(values[0], dtype=np.float32)
        shape = [1] * len(sample_shape)
        shape[axis - 1] = len(values)
        return np.asarray(values, dtype=np.float32).reshape(shape)

    def to_standard(self, x: np.ndarray) -> np.ndarray:
        """Model units -> the standard's units, float32."""
        mean = self._broadcast(self.mean, x.shape[1:])
        std = self._broadcast(self.std, x.shape[1:])
        # Block by block: a memory-mapped set is mapped into a temporary file, not memory.
        return map_blocks(x, lambda block: block * std + mean, np.float32)

    def prefix(self, model: onnx.ModelProto, sample_shape: Sequence[int]) -> onnx.ModelProto:
        """The model with ``z = (p - mean) / std`` in front: it takes standard units."""
        out = onnx.ModelProto()
        out.CopyFrom(model)
        graph = out.graph
        initializers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise IntakeError(f"an input mapping needs a model with one input, found "
                              f"{len(inputs)}")
        name = inputs[0].name
        taken = {n for node in graph.node for n in (*node.input, *node.output)} | initializers
        inner = _fresh(f"{name}__model_units", taken)
        for node in graph.node:
            node.input[:] = [inner if i == name else i for i in node.input]
        for output in graph.output:  # an identity model would read its input directly
            if output.name == name:
                raise IntakeError("the model's output is its input; nothing to map")
        mean_name, std_name = _fresh(f"{name}__mean", taken), _fresh(f"{name}__std", taken)
        centred = _fresh(f"{name}__centred", taken)
        graph.initializer.extend([
            numpy_helper.from_array(self._broadcast(self.mean, sample_shape), mean_name),
            numpy_helper.from_array(self._broadcast(self.std, sample_shape), std_name)])
        prefix = [helper.make_node("Sub", [name, mean_name], [centred], name=f"{name}__sub"),
                  helper.make_node("Div", [centred, std_name], [inner], name=f"{name}__div")]
        nodes = prefix + list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes)
        return out


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def parse_values(raw: str | Sequence[float] | None, field: str) -> tuple[float, ...] | None:
    """``"0.5, 0.5, 0.5"`` or a list of numbers -> a tuple; None stays None."""
    if raw is None:
        return None
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{field} must be comma-separated numbers, got {raw!r}") from exc
    if not values:
        raise DataError(f"{field} is empty")
    return values


def parse_mapping(mean: str | Sequence[float] | None,
                  std: str | Sequence[float] | None) -> InputMapping | None:
    """Both or neither: a mapping, or None when the model takes the standard's units."""
    m, s = parse_values(mean, "input_mean"), parse_values(std, "input_std")
    if (m is None) != (s is None):
        raise DataError("give both input_mean and input_std (--mean and --std), or neither")
    if m is None or s is None:
        return None
    if len(m) == 1 and len(s) > 1:
        m = m * len(s)
    if len(s) == 1 and len(m) > 1:
        s = s * len(m)
    mapping = InputMapping(m, s)
    return None if mapping.identity else mapping
