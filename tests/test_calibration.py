"""Calibration: ECE and friends from first principles, and temperature scaling on a real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers.checks import calibration
from verifiers.checks.context import RunContext
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import LoadedModel, load_model
from verifiers.ood.calibration import (
    bin_index,
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability,
)
from verifiers.standards import parse_standard

# Tiny models: one intra-op thread avoids OpenMP spin on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STANDARD = parse_standard("""
name: calibration-test
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.1", "0.2"]}
criteria: [{metric: calibration.ece, op: "<=", threshold: 0.1}]
""")


def test_ece_by_hand_and_bin_edges() -> None:
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    # Bin (14/15, 1]: confidence .95, accuracy .5; bin (8/15, 9/15]: .55 vs 1. Both gaps .45.
    assert expected_calibration_error(conf, correct, 15) == pytest.approx(0.45)
    # Bin b holds ((b-1)/B, b/B]: an upper edge belongs to its bin, 1.0 to the last.
    edges = np.array([1 / 15, 2 / 15, 2 / 15 + 1e-9, 1.0, 0.0])
    assert bin_index(edges, 15).tolist() == [0, 1, 2, 14, 0]


def test_ece_matches_a_direct_loop() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1.0, 500)
    correct = rng.uniform(size=500) < conf ** 2  # overconfident on purpose
    expected = 0.0
    for b in range(15):
        in_bin = (conf > b / 15) & (conf <= (b + 1) / 15)
        if in_bin.any():
            expected += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(expected, abs=1e-12)
    diagram = reliability(conf, correct)
    assert sum(b.count for b in diagram) == 500 and len(diagram) == 15


def test_brier_and_nll() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([0, 1])
    assert brier_score(probs, y) == pytest.approx(((0.09 + 0.04 + 0.01) + (0.01 + 0.81 + 0.64))
                                                  / 2)
    assert negative_log_likelihood(probs, y) == pytest.approx(-(np.log(0.7) + np.log(0.1)) / 2)




class TemperatureSoftmax(nn.Module):
    """softmax(z / T): exported, the graph ends in Softmax (the model outputs probabilities)."""

    def __init__(self, inner: nn.Module, temperature: float) -> None:
        super().__init__()
        self.inner, self.temperature = inner, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x) / self.temperature, dim=1)


def fit_temperature(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Guo et al.: the temperature minimising NLL on held-out data (a grid is enough)."""
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 200))
    nll = [F.cross_entropy(logits / t, torch.from_numpy(y)).item() for t in grid]
    return float(grid[int(np.argmin(nll))])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    x_tr, y_tr, _, _ = load_digits_split()
    # Noisy labels memorised over many epochs: the classic overconfident network.
    x_fit, y_fit = x_tr[:1197], y_tr[:1197].copy()
    rng = np.random.default_rng(0)
    flip = rng.uniform(size=len(y_fit)) < 0.3
    y_fit[flip] = rng.integers(0, 10, int(flip.sum()))
    net = train(DigitsMLP(256), x_fit, y_fit, epochs=200, seed=0)
    temperature = fit_temperature(net, x_tr[1197:], y_tr[1197:])
    out = tmp_path_factory.mktemp("calibration")
    return {"temperature": temperature,
            "raw": load_model(export_onnx(net, out / "raw.onnx")),
            "scaled": load_model(export_onnx(TemperatureSoftmax(net, temperature),
                                             out / "scaled.onnx"))}


def make_ctx(model: LoadedModel) -> RunContext:
    _, _, x_ev, y_ev = load_digits_split()
    return RunContext(model=model, eval_set=validate_arrays(x_ev, y_ev, "digits-eval"),
                      standard=STANDARD, domain=InputDomain(0.0, 1.0),
                      device=torch.device("cpu"), seed=0, batch_size=128)


def test_temperature_scaling_lowers_ece(models: dict) -> None:
    assert models["temperature"] > 1.2  # the fit found the network overconfident
    raw_model, scaled_model = models["raw"], models["scaled"]
    assert scaled_model.info.output_kind == "probabilities"
    assert scaled_model.proto.graph.node[-1].op_type == "Softmax"
    raw = calibration.run(make_ctx(raw_model))
    scaled = calibration.run(make_ctx(scaled_model))
    assert scaled.details["outputs"] == "probabilities" and raw.details["outputs"] == "logits"
    # Same argmax, so same accuracy; only the confidences moved.
    assert scaled.metrics["accuracy"] == raw.metrics["accuracy"]
    assert scaled.metrics["ece"] < raw.metrics["ece"] - 0.02, (raw.metrics, scaled.metrics)
    assert scaled.metrics["nll"] < raw.metrics["nll"]
    assert scaled.metrics["mean_confidence_misclassified"] < raw.metrics[
        "mean_confidence_misclassified"]
    diagram = raw.details["reliability_diagram"]
    assert len(diagram) == 15 and sum(b["count"] for b in diagram) == 300
    assert raw.metrics["n_misclassified"] == round(300 * (1 - raw.metrics["accuracy"]))


def test_confidence_on_adversarial_examples_when_left(models: dict) -> None:
    ctx = make_ctx(models["raw"])
    without = calibration.run(ctx)
    assert not any("adversarial" in k for k in without.metrics)
    assert "mean_confidence_adversarial@0.1" in without.details["not_obtained"]
    # What the adversarial check leaves: indices and confirmed examples per eps label.
    idx = np.arange(20)
    x_adv = np.clip(ctx.eval_set.x[idx] + 0.1 * np.sign(np.random.default_rng(0).normal(
        size=ctx.eval_set.x[idx].shape)), 0, 1).astype(np.float32)
    ctx.per_sample["adversarial_examples@0.1"] = {"index": idx, "x_adv": x_adv}
    ctx.per_sample["adversarial_examples@0.2"] = {"index": idx[:0], "x_adv": x_adv[:0]}
    found = calibration.run(ctx)
    probs = torch.softmax(torch.from_numpy(models["raw"].runner.run(x_adv)).double(), 1)
    assert found.metrics["mean_confidence_adversarial@0.1"] == pytest.approx(
        probs.max(1).values.mean().item(), abs=1e-6)
    assert "max_confidence_adversarial@0.2" in found.details["not_obtained"]
    assert found.details["adversarial_examples"]["0.1"]["n"] == 20
