"""The one declared vocabulary of metric paths: what every check can produce and what it means.

A metric path is ``<check>.<key>``; each check family declares its keys as patterns with
placeholders (``robust_accuracy@{eps}``, ``{suite}.auroc.{score}``), which way is better, and
how the reported value relates to the truth (exact, or a one-sided bound: attacked robust
accuracy is an upper bound, certified accuracy a lower one). Standards are validated against
it, reports and ``robustgate metrics`` describe it, and checks build their keys from it, so a
path is written in one place.

This package is pure data: it imports nothing else of ``verifiers``, so the standards layer
can depend on it without importing the checks. Importing it fills the catalogue with the
families listed at the bottom.
"""

from verifiers.catalogue import (  # noqa: E402,F401  (fills the catalogue, one family each)
    adversarial,
    calibration,
    certified,
    clean,
    explain,
    fidelity,
    ood,
    sanity,
    smoothing,
    subgroups,
)
from verifiers.catalogue.spec import (
    BOUNDS,
    DIRECTIONS,
    EPS,
    NORM,
    SAMPLINGS,
    CheckMetrics,
    Match,
    MetricSpec,
    Placeholder,
    UnknownMetric,
    catalogue,
    check_names,
    declare,
    lookup,
)

__all__ = [
    "BOUNDS",
    "DIRECTIONS",
    "EPS",
    "NORM",
    "SAMPLINGS",
    "CheckMetrics",
    "Match",
    "MetricSpec",
    "Placeholder",
    "UnknownMetric",
    "catalogue",
    "check_names",
    "declare",
    "lookup",
]
