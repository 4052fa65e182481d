"""Randomized-smoothing certificates for models too large for bound propagation.

The certificate is for the SMOOTHED classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c),
not the uploaded model f: a deployment must run g (with the same sigma) for it to apply.

Modules, one concept each: ``config`` (the standard's ``smoothing:`` section and its presets),
``bounds`` (Clopper-Pearson lower bound, radius, the largest radius N samples can certify,
PREDICT's binomial test), ``sampling`` (seeded, batched noise counts of a base classifier on
torch or onnxruntime), ``certify`` (Cohen et al.'s CERTIFY and PREDICT over a set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifiers.lazy import lazy_exports

_EXPORTS = {
    "max_radius": "bounds",
    "p_lower": "bounds",
    "predict_test": "bounds",
    "radius": "bounds",
    "ABSTAIN": "certify",
    "Certificates": "certify",
    "certify_one": "certify",
    "certify_samples": "certify",
    "PRESETS": "config",
    "Radius": "config",
    "SmoothingConfig": "config",
    "parse_radius": "config",
    "parse_smoothing": "config",
    "BaseClassifier": "sampling",
    "noise_counts": "sampling",
    "onnx_base": "sampling",
    "torch_base": "sampling",
}

__all__ = [
    "ABSTAIN",
    "PRESETS",
    "BaseClassifier",
    "Certificates",
    "Radius",
    "SmoothingConfig",
    "certify_one",
    "certify_samples",
    "max_radius",
    "noise_counts",
    "onnx_base",
    "p_lower",
    "parse_radius",
    "parse_smoothing",
    "predict_test",
    "radius",
    "torch_base",
]

if TYPE_CHECKING:
    from verifiers.smoothing.bounds import max_radius, p_lower, predict_test, radius
    from verifiers.smoothing.certify import ABSTAIN, Certificates, certify_one, certify_samples
    from verifiers.smoothing.config import (
        PRESETS,
        Radius,
        SmoothingConfig,
        parse_radius,
        parse_smoothing,
    )
    from verifiers.smoothing.sampling import BaseClassifier, noise_counts, onnx_base, torch_base

__getattr__ = lazy_exports(__name__, _EXPORTS)
