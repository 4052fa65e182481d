"""The OOD and calibration checks run end to end through ``certify`` under a custom standard."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import torch

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers import certify, parse_standard
from verifiers.data import validate_arrays

STANDARD = """
name: ood-pipeline
version: 1
description: OOD and calibration criteria next to the usual ones.
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.05"]}
budget: {pgd: {steps: 5, restarts: 1}}
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.9}
  - {metric: ood.uniform_noise.auroc.msp, op: ">=", threshold: 0.5}
  - {metric: ood.gaussian_noise.aupr.energy, op: ">=", threshold: 0.0}
  - {metric: calibration.ece, op: "<=", threshold: 0.2}
  - {metric: ood.adversarial.max_confidence, op: "<=", threshold: 0.9, severity: advisory}
  - {metric: ood.adversarial.certified_max_confidence, op: "<=", threshold: 0.9,
     severity: advisory}
"""


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    net = train(DigitsMLP(), x_tr, y_tr, epochs=10)
    path = export_onnx(net, tmp_path_factory.mktemp("pipeline") / "mlp.onnx")
    yield certify(path.read_bytes(), validate_arrays(x_ev, y_ev, "digits"),
                  parse_standard(STANDARD), seed=3)
    torch.set_num_threads(before)


def test_ood_criteria_are_evaluated_from_the_scorecard(card: dict) -> None:
    by_metric = {c["metric"]: c for c in card["criteria"]}
    auroc = by_metric["ood.uniform_noise.auroc.msp"]
    assert auroc["result"] == "PASS"
    assert auroc["value"] == card["metrics"]["ood.uniform_noise.auroc.msp"]
    assert auroc["value"] == card["checks"]["ood"]["metrics"]["uniform_noise.auroc.msp"]
    assert by_metric["calibration.ece"]["value"] == card["metrics"]["calibration.ece"]
    # A plain ReLU net is fooled by noise inside the ball: the advisory criterion fails.
    assert by_metric["ood.adversarial.max_confidence"]["result"] == "FAIL"
    # The certified bound over the same large balls cannot be below what the attack reached:
    # it fails the advisory criterion too, with a value (never a silent pass).
    certified = by_metric["ood.adversarial.certified_max_confidence"]
    reached = by_metric["ood.adversarial.max_confidence"]["value"]
    assert certified["result"] == "FAIL" and certified["value"] >= reached - 1e-5
    assert card["verdict"] == "PASS"  # advisory criteria do not decide the verdict


def test_scorecard_says_how_ood_was_measured(card: dict) -> None:
    ood = card["checks"]["ood"]
    assert ood["status"] == "ok"
    assert ood["details"]["sign_convention"].startswith("higher score = more in-distribution")
    assert ood["details"]["positive_class"] == "in-distribution"
    assert ood["details"]["in_distribution"]["sha256"] == card["dataset"]["sha256"]
    assert ood["details"]["seed"] == card["seed"] == 3
    # The scorecard is stored as strict JSON: no NaN, no numpy scalars.
    assert json.loads(json.dumps(card, allow_nan=False)) == json.loads(json.dumps(card))
    cal = card["checks"]["calibration"]
    assert len(cal["details"]["reliability_diagram"]) == 15
    assert cal["metrics"]["accuracy"] == pytest.approx(card["metrics"]["clean.accuracy"])
