"""The in-process pipeline: reproducible, consistent per sample, honest about re-checks."""

from __future__ import annotations

import numpy as np

from verifiers import certify, get_builtin, load_eval_set
from verifiers.attacks import recheck_linf
from verifiers.data import InputDomain
from verifiers.model import load_model


def _strip_timing(card: dict) -> dict:
    card = dict(card)
    for key in ("timings", "hardware"):
        card.pop(key)
    card["checks"] = {k: {**v, "seconds": 0} for k, v in card["checks"].items()}
    return card


def test_same_seed_same_scorecard_and_curve_is_monotone(digits):
    raw = digits.brittle_model.read_bytes()
    data = load_eval_set(digits.eval_set)
    std = get_builtin("demo-digits")
    first = certify(raw, data, std, seed=3)
    assert _strip_timing(first) == _strip_timing(certify(raw, data, std, seed=3))
    m = first["metrics"]
    assert m["clean.accuracy"] >= m["adversarial.robust_accuracy@0.1"] >= \
        m["adversarial.robust_accuracy@0.2"]
    # A normally trained digits CNN does not survive eps = 0.2 (the brittle model fails).
    assert m["adversarial.robust_accuracy@0.2"] < 0.2
    assert first["verdict"] == "FAIL"


def test_recheck_discards_examples_outside_ball_range_or_still_correct(digits):
    model = load_model(digits.robust_model.read_bytes())
    x, y = digits.x[:20], digits.y[:20]
    domain = InputDomain(0.0, 1.0)
    eps = 0.1
    # Still correctly classified: not adversarial.
    assert not recheck_linf(model.runner, x, x, y, eps, domain).any()
    # Misclassified but far outside the ball (a blank image) or outside [0, 1]: refused.
    blank = np.zeros_like(x)
    wrong = model.runner.predict(blank) != y
    assert wrong.any()
    assert not recheck_linf(model.runner, x, blank, y, eps, domain).any()
    shifted = np.clip(x + eps, 0, 1) + 0.5
    assert not recheck_linf(model.runner, x, shifted, y, eps, domain).any()
    # Labels changed, inputs untouched: onnxruntime disagrees with the label, so it counts.
    flipped = (y + 1) % 10
    assert recheck_linf(model.runner, x, x, flipped, eps, domain).all()
