"""Caps applied to untrusted models before any C++ parser, checker or runtime sees them."""

from __future__ import annotations

from dataclasses import dataclass

# A ViT-B/16 is ~350 MB of float32 weights; 1 GiB leaves room (protobuf's own cap is 2 GB).
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class IntakeLimits:
    """Sizes an upload may claim. Every cap is checked in Python, before onnx/onnxruntime."""

    # Serialized model, after gzip decompression or with a bundle's external data inlined
    # (the upload itself is capped too).
    max_bytes: int = DEFAULT_MAX_BYTES
    # Elements of one input sample: the probes and attacks allocate batches of these.
    max_input_elements: int = 1 << 24
    # Elements of any stored or inferred tensor at batch size 1 (1 GiB of float32).
    max_tensor_elements: int = 1 << 28
    # Nodes in the graph: shape inference and the converter are linear in it, not free.
    max_nodes: int = 50_000
    # Largest dimension a shape may declare; beyond it a claim is refused, not believed.
    max_dim: int = 1 << 31
