"""Robustgate's science, a plain library: no web, no database, no queue.

Typical use::

    from verifiers import certify, get_builtin, load_eval_set
    card = certify(open("model.onnx", "rb").read(), load_eval_set("eval.npz"),
                   get_builtin("demo-digits"))
    card["verdict"]

The names below are imported on first use (PEP 562): importing a light submodule such as
``verifiers.data`` or ``verifiers.certificate`` must not pull in torch, or every CLI call and
``verify-certificate`` pays seconds of start-up for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the submodule that defines it
_EXPORTS = {
    "EvalSet": "verifiers.data", "InputDomain": "verifiers.data",
    "load_eval_set": "verifiers.data",
    "Cancelled": "verifiers.errors", "DataError": "verifiers.errors",
    "IntakeError": "verifiers.errors", "SoundnessError": "verifiers.errors",
    "StandardError": "verifiers.errors", "UnsupportedOpError": "verifiers.errors",
    "VerifierError": "verifiers.errors",
    "certify": "verifiers.pipeline",
    "Standard": "verifiers.standards", "builtin_standards": "verifiers.standards",
    "get_builtin": "verifiers.standards", "parse_standard": "verifiers.standards",
}

__all__ = [
    "Cancelled",
    "DataError",
    "EvalSet",
    "InputDomain",
    "IntakeError",
    "SoundnessError",
    "Standard",
    "StandardError",
    "UnsupportedOpError",
    "VerifierError",
    "builtin_standards",
    "certify",
    "get_builtin",
    "load_eval_set",
    "parse_standard",
]

if TYPE_CHECKING:
    from verifiers.data import EvalSet, InputDomain, load_eval_set
    from verifiers.errors import (
        Cancelled,
        DataError,
        IntakeError,
        SoundnessError,
        StandardError,
        UnsupportedOpError,
        VerifierError,
    )
    from verifiers.pipeline import certify
    from verifiers.standards import Standard, builtin_standards, get_builtin, parse_standard


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'verifiers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
