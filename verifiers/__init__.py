"""Robustgate's science, a plain library: no web, no database, no queue.

Typical use::

    from verifiers import certify, get_builtin, load_eval_set
    card = certify(open("model.onnx", "rb").read(), load_eval_set("eval.npz"),
                   get_builtin("demo-digits"))
    card["verdict"]

The names below are imported on first use (verifiers.lazy): importing a light submodule such as
``verifiers.data`` or ``verifiers.certificate`` must not pull in torch, or every CLI call and
``verify-certificate`` pays seconds of start-up for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifiers.lazy import lazy_exports

# public name -> the submodule that defines it
_EXPORTS = {
    "EvalSet": "data", "InputDomain": "data",
    "load_eval_set": "data",
    "Cancelled": "errors", "DataError": "errors", "DeviceError": "errors",
    "IntakeError": "errors", "SoundnessError": "errors",
    "StandardError": "errors", "TimeLimitReached": "errors", "UnsupportedOpError": "errors",
    "VerifierError": "errors",
    "certify": "pipeline",
    "Standard": "standards", "builtin_standards": "standards",
    "get_builtin": "standards", "parse_standard": "standards",
}

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

if TYPE_CHECKING:
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


__getattr__ = lazy_exports(__name__, _EXPORTS)
