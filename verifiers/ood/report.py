"""Turn per-suite scores into the flat metric keys standards refer to.

Keys: ``<suite>.<metric>.<score>`` (e.g. ``uniform_noise.auroc.msp``), ``<suite>.
mean_confidence`` / ``<suite>.max_confidence`` (top-class probability on the OOD inputs),
``worst.<...>`` over every non-adversarial suite and ``worst_in_range.<...>`` over those whose
inputs lie in the valid range (``far_away`` leaves it on purpose).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from verifiers.ood.metrics import detection_metrics, fpr_key
from verifiers.ood.scores import SCORES, Scores, confidence_summary, conservative


def suite_metrics(suite: str, id_scores: Scores, ood_scores: Scores,
                  tpr_level: float) -> tuple[dict[str, float], list[str]]:
    """(metrics, names of the scores that could not be computed for this suite)."""
    metrics: dict[str, float] = {}
    missing = []
    for score in SCORES:
        s_in, s_out = id_scores.get(score), ood_scores.get(score)
        if s_in is None or s_out is None:
            missing.append(score)
            continue
        found = detection_metrics(conservative(s_in, in_distribution=True),
                                  conservative(s_out, in_distribution=False), tpr_level)
        metrics.update({f"{suite}.{metric}.{score}": value for metric, value in found.items()})
    metrics.update({f"{suite}.{k}": v for k, v in confidence_summary(ood_scores.msp).items()})
    return metrics, missing


def worst_case(metrics: dict[str, float], suites: list[str], tpr_level: float,
               prefix: str = "worst") -> dict[str, float]:
    """The weakest suite per metric: lowest AUROC / AUPR, highest FPR and confidence.

    A metric is aggregated only when every suite produced it: a worst case over part of the
    suites would overstate the model.
    """
    rules: list[tuple[str, Any]] = [(f"{m}.{s}", min if m in ("auroc", "aupr") else max)
                                    for s in SCORES for m in ("auroc", fpr_key(tpr_level), "aupr")]
    rules += [("mean_confidence", max), ("max_confidence", max)]
    worst = {}
    for key, pick in rules:
        values = [metrics.get(f"{suite}.{key}") for suite in suites]
        if suites and all(v is not None for v in values):
            worst[f"{prefix}.{key}"] = float(pick(values))
    return worst


def suite_details(n: int, description: str, in_valid_range: bool,
                  scores: Scores) -> dict[str, Any]:
    return {"n": n, "description": description, "in_valid_range": in_valid_range,
            "non_finite_outputs": int(np.sum(scores.non_finite))}
