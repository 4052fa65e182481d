"""Robustgate's science, a plain library: no web, no database, no queue.

Typical use::

    from verifiers import certify, get_builtin, load_eval_set
    card = certify(open("model.onnx", "rb").read(), load_eval_set("eval.npz"),
                   get_builtin("demo-digits"))
    card["verdict"]
"""

from verifiers.data import EvalSet, InputDomain, load_eval_set
from verifiers.errors import (
    Cancelled,
    DataError,
    DeviceError,
    IntakeError,
    SoundnessError,
    StandardError,
    TimeLimitReached,
    UnsupportedOpError,
    VerifierError,
)
from verifiers.pipeline import certify
from verifiers.standards import Standard, builtin_standards, get_builtin, parse_standard

__all__ = [
    "Cancelled",
    "DataError",
    "DeviceError",
    "EvalSet",
    "InputDomain",
    "IntakeError",
    "SoundnessError",
    "Standard",
    "StandardError",
    "TimeLimitReached",
    "UnsupportedOpError",
    "VerifierError",
    "builtin_standards",
    "certify",
    "get_builtin",
    "load_eval_set",
    "parse_standard",
]
