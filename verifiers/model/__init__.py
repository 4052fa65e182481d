"""Model intake: validate untrusted ONNX bytes, run them, convert them for gradients."""

from verifiers.model.convert import LogitsView, fidelity, to_torch, torch_scores
from verifiers.model.head import logits_graph
from verifiers.model.info import ModelInfo
from verifiers.model.intake import describe, parse_model
from verifiers.model.limits import DEFAULT_MAX_BYTES, IntakeLimits
from verifiers.model.loaded import LoadedModel, load_model
from verifiers.model.runtime import OnnxRunner

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
