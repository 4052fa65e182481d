"""The certified confidence bound over OOD balls (bound engine + softmax algebra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers import certify, parse_standard
from verifiers.bounds import build_graph
from verifiers.bounds.confidence import confidence_upper_bound
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import load_model

STANDARD = """
name: ood-certified
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.05"]}
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.5}
  - {metric: ood.adversarial.certified_max_confidence, op: "<=", threshold: 1.0,
     severity: advisory}
"""


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsMLP(hidden=32), x_tr, y_tr, epochs=8, seed=5)
    path = export_onnx(model, tmp_path_factory.mktemp("oodb") / "mlp.onnx")
    return path.read_bytes(), x_ev[:60], y_ev[:60]


def _confidence(model, x: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(model.runner.run(x)), 1).max(1).values.numpy()


def test_bound_is_exact_at_zero_radius_and_dominates_sampled_points(mlp):
    raw, _, _ = mlp
    model = load_model(raw)
    graph = build_graph(model.proto)
    rng = np.random.default_rng(0)
    centres = rng.random((12, 1, 8, 8), dtype=np.float32)
    domain = InputDomain(0.0, 1.0)
    exact = confidence_upper_bound(graph, centres, 0.0, domain)
    np.testing.assert_allclose(exact, _confidence(model, centres), atol=1e-5)
    eps = 0.05
    bound = confidence_upper_bound(graph, centres, eps, domain)
    assert (bound >= exact - 1e-6).all() and (bound <= 1.0).all()
    for i, c in enumerate(centres):
        points = np.clip(c + rng.uniform(-eps, eps, (256, *c.shape)), 0, 1).astype(np.float32)
        assert _confidence(model, points).max() <= bound[i] + 1e-5


def test_pipeline_reports_the_bound_when_the_standard_asks(mlp):
    raw, x, y = mlp
    card = certify(raw, validate_arrays(x, y, "digits-60"), parse_standard(STANDARD), seed=1)
    m = card["checks"]["ood"]["metrics"]
    certified = m["adversarial.certified_max_confidence"]
    assert m["adversarial.max_confidence"] <= certified + 1e-5 <= 1.0 + 1e-5
    plain = certify(raw, validate_arrays(x, y, "digits-60"),
                    parse_standard(STANDARD.replace("ood.adversarial.certified_max_confidence",
                                                    "ood.adversarial.max_confidence")), seed=1)
    assert "adversarial.certified_max_confidence" not in plain["checks"]["ood"]["metrics"]
