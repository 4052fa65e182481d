"""The meaning of a standard's numbers: declared input units, fidelity in relative units,
and black-box evidence that stays informative on a saturated softmax.

Real models trained here in seconds: the same digits network exported once taking pixels
and once taking normalised inputs gives the same robust accuracy when the submission
declares the mapping, and is refused when it does not; a softmax at temperature 0.001
(logits around 1,000) is trusted under the relative fidelity unit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from examples.digits import DigitsCNN, export_onnx, load_digits_split, train
from verifiers import DataError, certify, parse_standard
from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import Target, cascade
from verifiers.attacks.budget import PRESETS
from verifiers.attacks.rowrandom import RowRandom
from verifiers.checks import RunContext, fidelity
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import load_model
from verifiers.units import InputMapping, parse_mapping

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN, STD = 0.5, 0.25   # pixels in [0, 1] -> z in [-2, 2]
N = 120

STANDARD = """
name: units
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.1"]}
budget: {preset: quick}
attacks: [apgd-ce, square]
fidelity_unit: relative
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.5}
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.0}
"""


class TakesNormalised(nn.Module):
    """The same network, exported to take z = (pixel - mean) / std, as most vision models
    are shipped."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.inner(z * STD + MEAN)


class Sharp(nn.Module):
    """Softmax at temperature 0.001: logits around 1,000, saturated probabilities."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.inner(x) / 0.001, dim=1)


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    tmp = tmp_path_factory.mktemp("units")
    net = train(DigitsCNN(), x_tr, y_tr, epochs=6, seed=0)
    return {"pixels": export_onnx(net, tmp / "pixels.onnx").read_bytes(),
            "normalised": export_onnx(TakesNormalised(net), tmp / "z.onnx").read_bytes(),
            "sharp": export_onnx(Sharp(net), tmp / "sharp.onnx").read_bytes(),
            "x": x_ev[:N], "y": y_ev[:N]}


def test_mapping_parses_both_or_neither_and_refuses_nonsense():
    assert parse_mapping(None, None) is None
    assert parse_mapping("0", "1") is None  # the identity maps nothing
    m = parse_mapping("0.5", "0.25,0.25,0.25")
    assert m == InputMapping((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    for mean, std, words in (("0.5", None, "both"), ("a", "1", "comma-separated"),
                             ("0.5", "0", "> 0"), ("1,2", "1,2,3", "same number")):
        with pytest.raises(DataError, match=words):
            parse_mapping(mean, std)
    with pytest.raises(DataError, match="no channel axis"):
        InputMapping((0.1, 0.2), (1.0, 1.0)).axis((3, 8, 8))
    nhwc = InputMapping((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))
    assert nhwc.axis((3, 8, 8)) == 1 and nhwc.axis((8, 8, 3)) == 3


def test_same_network_same_robust_accuracy_when_the_mapping_is_declared(nets):
    std = parse_standard(STANDARD)
    x, y = nets["x"], nets["y"]
    pixels = certify(nets["pixels"], validate_arrays(x, y, "p"), std)
    z = (x - MEAN) / STD
    mapped = certify(nets["normalised"], validate_arrays(z, y, "z"), std,
                     mapping=parse_mapping(str(MEAN), str(STD)))
    a, b = pixels["metrics"], mapped["metrics"]
    assert a["clean.accuracy"] == b["clean.accuracy"]
    ra, rb = a["adversarial.robust_accuracy@0.1"], b["adversarial.robust_accuracy@0.1"]
    print(f"robust accuracy@0.1: pixels {ra:.3f}, normalised + mapping {rb:.3f}")
    assert ra < a["clean.accuracy"] - 0.1  # the attacks bite: the comparison means something
    assert abs(ra - rb) <= 0.05  # attack noise only (6 of 120 points)
    assert mapped["dataset"]["input_mapping"]["mean"] == [MEAN]
    # Every metric the battery produced is one the catalogue declares.
    from verifiers import catalogue

    for path in a:
        catalogue.lookup(path)
    assert mapped["dataset"]["input_range"] == [0.0, 1.0]
    assert mapped["model"]["sha256"] == load_model(nets["normalised"]).info.sha256


def test_normalised_data_without_the_mapping_is_refused_naming_the_fix(nets):
    std = parse_standard(STANDARD)
    z = (nets["x"] - MEAN) / STD
    with pytest.raises(DataError) as err:
        certify(nets["normalised"], validate_arrays(z, nets["y"], "z"), std)
    message = str(err.value)
    assert "span [-2, 2]" in message and "[0, 1] (pixel intensity)" in message
    assert "--mean" in message and "--std" in message
    # A wrong mapping is refused too, naming the mapping as the suspect.
    with pytest.raises(DataError, match="Check the declared mean and std"):
        certify(nets["normalised"], validate_arrays(z, nets["y"], "z"), std,
                mapping=parse_mapping("0.5", "0.5"))


def test_a_standard_without_a_domain_needs_the_range_declared(nets):
    legacy = parse_standard(STANDARD.replace(
        "input_domain: {low: 0.0, high: 1.0, units: pixel intensity}\n", ""))
    data = validate_arrays(nets["x"], nets["y"], "p")
    with pytest.raises(DataError, match="declares no input domain"):
        certify(nets["pixels"], data, legacy)
    with pytest.raises(DataError, match="contradicts"):
        certify(nets["pixels"], data, parse_standard(STANDARD), input_range=(0.0, 2.0))
    tabular = parse_standard(STANDARD.replace("{low: 0.0, high: 1.0, units: pixel intensity}",
                                              "{range: data, units: features}"))
    assert tabular.input_domain is not None and tabular.input_domain.from_data


def _fidelity(raw: bytes, x: np.ndarray, y: np.ndarray, unit: str) -> tuple[RunContext, dict]:
    std = dataclasses.replace(parse_standard(STANDARD), fidelity_unit=unit)
    ctx = RunContext(model=load_model(raw), eval_set=validate_arrays(x, y, "t"), standard=std,
                     domain=InputDomain(0.0, 1.0), device=torch.device("cpu"), seed=0,
                     batch_size=64)
    return ctx, fidelity.run(ctx).metrics


def test_large_logits_are_trusted_in_relative_units(nets):
    x, y = nets["x"], nets["y"]
    ctx, m = _fidelity(nets["sharp"], x, y, "relative")
    print(f"sharp softmax: max_abs_diff_logits {m['max_abs_diff_logits']:.3g}, "
          f"max_rel_diff {m['max_rel_diff']:.3g}")
    assert ctx.module is not None and m["max_rel_diff"] <= 1e-4
    assert m["prediction_agreement"] == 1.0
    # The absolute figure stays in the scorecard and still decides under the old unit. Some
    # CPUs agree bit for bit, so judge it against a tolerance it cannot meet at this scale:
    # below one float32 ulp of a logit of ~1,000 (6e-5) any nonzero difference misses.
    assert m["max_abs_diff"] >= 0.0 and "max_abs_diff_logits" in m
    if m["max_abs_diff"] > 1e-4:
        ctx_abs, _ = _fidelity(nets["sharp"], x, y, "absolute")
        assert ctx_abs.module is None and "output units" in ctx_abs.white_box_reason


def test_square_reads_the_margin_of_a_saturated_softmax(nets):
    """Black-box evidence on the cut logits is informative where the probabilities are
    saturated: Square alone must come close to what white-box APGD finds."""
    sharp = load_model(nets["sharp"])
    x, y = nets["x"], nets["y"]
    ctx = RunContext(model=sharp, eval_set=validate_arrays(x, y, "t"),
                     standard=parse_standard(STANDARD), domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=0, batch_size=64)
    ball, domain, budget = Ball("linf", 0.1), InputDomain(0.0, 1.0), PRESETS["standard"]
    pixels = load_model(nets["pixels"])
    correct = pixels.runner.predict(x, 64) == y
    idx = np.flatnonzero(correct)

    def robust(target: Target, attacks: tuple[str, ...]) -> float:
        res = cascade(target, x[idx], y[idx], ball, domain, budget, attacks,
                      RowRandom.of(7, idx))
        return float((~res.fooled).sum() / len(x))

    from verifiers.model import to_torch
    white = Target(to_torch(pixels.proto, "logits", torch.device("cpu")), pixels.runner,
                   "logits", torch.device("cpu"))
    truth = robust(white, ("apgd-ce", "apgd-t"))
    blind = robust(Target(None, sharp.runner, "probabilities", torch.device("cpu")),
                   ("square",))
    margin = robust(Target(None, sharp.runner, "probabilities", torch.device("cpu"),
                           logits=ctx.logits_runner()), ("square",))
    print(f"robust@0.1: white-box {truth:.3f}, Square on probabilities {blind:.3f}, "
          f"Square on cut logits {margin:.3f}")
    assert ctx.logits_runner() is not None
    assert blind - margin >= 0.2  # saturated probabilities hid the signal
    assert margin <= truth + 0.15
