"""What intake learned about an accepted model; the scorecard records it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    sha256: str  # of the bytes as uploaded (gzip, bundle or plain)
    size: int  # bytes as uploaded
    opset: int
    producer: str
    input_name: str
    # Shape the runner feeds; dim 0 is the batch ("batch" once made dynamic).
    input_shape: list[int | str | None]
    input_dtype: str
    output_name: str
    output_kind: str  # "logits", "probabilities" or "log_probabilities"
    op_histogram: dict[str, int] = field(default_factory=dict)
    parameter_count: int = 0
    # "dynamic" (as exported), "rewritten" (fixed -> dynamic, verified), "added" (the graph
    # had no batch dimension; one was added and verified) or "fixed" (kept; see batch_detail).
    batch: str = "dynamic"
    batch_detail: str = ""
    # How the converted model obtains logits: "output", "cut <op> <node>" or "log(output)".
    logits_from: str = "output"
    compressed: bool = False  # uploaded as gzip
    bundle: bool = False  # uploaded as a zip bundle (graph + external data files)
    onnx_size: int = 0  # serialized ONNX bytes after decompression
    max_bytes: int = 0  # the size cap the upload was checked against
    stochastic: bool = False  # random ops on the output path, accepted for EOT
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "size": self.size,
            "onnx_size": self.onnx_size,
            "compressed": self.compressed,
            "bundle": self.bundle,
            "max_bytes": self.max_bytes,
            "opset": self.opset,
            "producer": self.producer,
            "input": {"name": self.input_name, "shape": self.input_shape,
                      "dtype": self.input_dtype},
            "output": {"name": self.output_name, "kind": self.output_kind,
                       "logits_from": self.logits_from},
            "batch": {"status": self.batch, "detail": self.batch_detail},
            "op_histogram": self.op_histogram,
            "parameter_count": self.parameter_count,
            "stochastic": self.stochastic,
            "notes": list(self.notes),
        }
