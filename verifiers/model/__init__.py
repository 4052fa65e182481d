"""Model intake: validate untrusted ONNX bytes, run them, convert them for gradients."""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifiers.lazy import lazy_exports

_EXPORTS = {
    "LogitsView": "convert",
    "fidelity": "convert",
    "to_torch": "convert",
    "torch_scores": "convert",
    "logits_graph": "head",
    "ModelInfo": "info",
    "describe": "intake",
    "parse_model": "intake",
    "DEFAULT_MAX_BYTES": "limits",
    "IntakeLimits": "limits",
    "LoadedModel": "loaded",
    "load_model": "loaded",
    "OnnxRunner": "runtime",
}

__all__ = [
    "DEFAULT_MAX_BYTES",
    "IntakeLimits",
    "LoadedModel",
    "LogitsView",
    "ModelInfo",
    "OnnxRunner",
    "describe",
    "fidelity",
    "load_model",
    "logits_graph",
    "parse_model",
    "to_torch",
    "torch_scores",
]

if TYPE_CHECKING:
    from verifiers.model.convert import LogitsView, fidelity, to_torch, torch_scores
    from verifiers.model.head import logits_graph
    from verifiers.model.info import ModelInfo
    from verifiers.model.intake import describe, parse_model
    from verifiers.model.limits import DEFAULT_MAX_BYTES, IntakeLimits
    from verifiers.model.loaded import LoadedModel, load_model
    from verifiers.model.runtime import OnnxRunner

__getattr__ = lazy_exports(__name__, _EXPORTS)
