"""Out-of-distribution overconfidence and calibration (Hyatt & Lee's second pillar).

Suites are built from the evaluation set's own shape and range; scores (MSP, max logit,
energy; higher = more in-distribution) are read from onnxruntime on the original model;
metrics (AUROC, FPR at 95% TPR, AUPR-In) are our own numpy, in-distribution = positive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifiers.lazy import lazy_exports

_EXPORTS = {
    "FoolingResult": "adversarial",
    "fooling_search": "adversarial",
    "ReliabilityBin": "calibration",
    "brier_score": "calibration",
    "calibration_errors": "calibration",
    "expected_calibration_error": "calibration",
    "negative_log_likelihood": "calibration",
    "reliability": "calibration",
    "ConfidenceBound": "certified",
    "FAMILIES": "config",
    "AdversarialOodConfig": "config",
    "CalibrationConfig": "config",
    "OodConfig": "config",
    "load_ood_x": "intake",
    "auroc": "metrics",
    "average_precision": "metrics",
    "detection_metrics": "metrics",
    "fpr_at_tpr": "metrics",
    "OutputReader": "reader",
    "SCORES": "scores",
    "SIGN_CONVENTION": "scores",
    "Scores": "scores",
    "scores_from": "scores",
    "OodSuite": "suites",
    "build_suites": "suites",
    "user_suite": "suites",
}

__all__ = [
    "FAMILIES",
    "SCORES",
    "SIGN_CONVENTION",
    "AdversarialOodConfig",
    "CalibrationConfig",
    "ConfidenceBound",
    "FoolingResult",
    "OodConfig",
    "OodSuite",
    "OutputReader",
    "ReliabilityBin",
    "Scores",
    "auroc",
    "average_precision",
    "brier_score",
    "build_suites",
    "calibration_errors",
    "detection_metrics",
    "expected_calibration_error",
    "fooling_search",
    "fpr_at_tpr",
    "load_ood_x",
    "negative_log_likelihood",
    "reliability",
    "scores_from",
    "user_suite",
]

if TYPE_CHECKING:
    from verifiers.ood.adversarial import FoolingResult, fooling_search
    from verifiers.ood.calibration import (
        ReliabilityBin,
        brier_score,
        calibration_errors,
        expected_calibration_error,
        negative_log_likelihood,
        reliability,
    )
    from verifiers.ood.certified import ConfidenceBound
    from verifiers.ood.config import FAMILIES, AdversarialOodConfig, CalibrationConfig, OodConfig
    from verifiers.ood.intake import load_ood_x
    from verifiers.ood.metrics import auroc, average_precision, detection_metrics, fpr_at_tpr
    from verifiers.ood.reader import OutputReader
    from verifiers.ood.scores import SCORES, SIGN_CONVENTION, Scores, scores_from
    from verifiers.ood.suites import OodSuite, build_suites, user_suite

__getattr__ = lazy_exports(__name__, _EXPORTS)
