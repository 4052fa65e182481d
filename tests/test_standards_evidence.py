"""One-sided evidence on real checks (no mocks): attacked robust accuracy is an upper bound.

A model with a Round in front (gradient masking) leaves the adversarial check inconclusive but
its confirmed examples still count: a robust-accuracy threshold it already misses FAILS, one it
meets stays INCONCLUSIVE, never PASS. On a random graph one confirmed draw proves nothing, so
no bound is declared and nothing fails on it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from examples.digits import DigitsCNN, export_onnx, load_digits_split, train
from verifiers.checks import RunContext, adversarial, clean, fidelity, sanity
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import load_model
from verifiers.standards import FAIL, INCONCLUSIVE, PASS, evaluate, parse_standard

# Tiny models: one intra-op thread avoids OpenMP spin on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STANDARD = """
name: evidence
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.1", "0.3"]}
budget: {preset: quick, sanity: {points: 40}}
attacks: [apgd-ce, square]
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.8}
  - {metric: adversarial.robust_accuracy@0.3, op: ">=", threshold: 0.9}
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.0}
"""


class Rounded(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 8) / 8)


class Noisy(Rounded):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + 0.01 * torch.randn_like(x))




@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    tmp = tmp_path_factory.mktemp("evidence")
    plain = train(DigitsCNN(), x_tr, y_tr, epochs=6, seed=0)
    return {"plain": export_onnx(plain, tmp / "plain.onnx"),
            "round": export_onnx(Rounded(plain).eval(), tmp / "round.onnx"),
            "noisy": export_onnx(Noisy(plain).eval(), tmp / "noisy.onnx"),
            "x": x_ev[:80], "y": y_ev[:80]}


def _run(path: Path, models: dict) -> RunContext:
    ctx = RunContext(model=load_model(path, allow_random=True),
                     eval_set=validate_arrays(models["x"], models["y"], "test"),
                     standard=parse_standard(STANDARD), domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=0, batch_size=128)
    for check in (clean, fidelity, adversarial, sanity):
        ctx.results[check.NAME] = check.run(ctx)
    return ctx


def test_masked_model_fails_on_its_upper_bound_and_never_passes(models):
    ctx = _run(models["round"], models)
    adv = ctx.results["adversarial"]
    assert adv.status == "inconclusive" and "Round" in adv.reason
    assert "robust_accuracy@*" in adv.details["upper_bounds"]
    assert adv.metrics["robust_accuracy@0.3"] < 0.9      # kept although inconclusive
    results, verdict, reasons = evaluate(ctx.standard, ctx.results)
    by_metric = {r.criterion.metric: r for r in results}
    missed = by_metric["adversarial.robust_accuracy@0.3"]
    assert missed.result == FAIL and "upper bound" in missed.reason
    assert missed.margin == pytest.approx(adv.metrics["robust_accuracy@0.3"] - 0.9)
    met = by_metric["adversarial.robust_accuracy@0.1"]
    assert met.result == INCONCLUSIVE and met.value == adv.metrics["robust_accuracy@0.1"]
    assert verdict == FAIL and any("upper bound" in r for r in reasons)
    # The same model against only the criteria it meets: INCONCLUSIVE, not PASS.
    lenient = parse_standard(STANDARD.replace("threshold: 0.9", "threshold: 0.0"))
    assert evaluate(lenient, ctx.results)[1] == INCONCLUSIVE


def test_the_plain_model_is_judged_on_its_numbers(models):
    ctx = _run(models["plain"], models)
    assert ctx.results["adversarial"].status == "ok"
    results, verdict, _ = evaluate(ctx.standard, ctx.results)
    assert [r.result for r in results] == [PASS, FAIL, PASS] and verdict == FAIL


def test_a_random_graph_declares_no_bound(models):
    ctx = _run(models["noisy"], models)
    adv = ctx.results["adversarial"]
    assert adv.details["upper_bounds"] == [] and adv.status == "inconclusive"
    assert adv.metrics["robust_accuracy@0.3"] < 0.9
    results, verdict, _ = evaluate(ctx.standard, ctx.results)
    assert results[1].result == INCONCLUSIVE and verdict == INCONCLUSIVE
