"""The certified check in the battery: sound against the attacks, honest about what it can't do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers import SoundnessError, certify, load_eval_set, parse_standard
from verifiers.bounds import build_graph
from verifiers.bounds.cost import refinement_cost
from verifiers.checks import RunContext, certified
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import load_model
from verifiers.standards import evaluate

STANDARD = """
name: certified-test
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.02", "0.05"]}
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.5}
  - {metric: certified.certified_accuracy@0.02, op: ">=", threshold: 0.3}
"""


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsMLP(hidden=32), x_tr, y_tr, epochs=15, adversarial_eps=0.05, seed=0)
    path = export_onnx(model, tmp_path_factory.mktemp("cert") / "mlp.onnx")
    return path.read_bytes(), validate_arrays(x_ev[:120], y_ev[:120], "digits-120")


def test_certified_never_exceeds_attacked_or_clean_per_sample(mlp):
    raw, data = mlp
    card = certify(raw, data, parse_standard(STANDARD), seed=0)
    m = card["metrics"]
    assert card["checks"]["certified"]["details"]["method"] == "crown"
    for eps in ("0.02", "0.05"):
        assert m[f"certified.certified_accuracy@{eps}"] <= m[f"adversarial.robust_accuracy@{eps}"]
    assert m["adversarial.robust_accuracy@0.02"] <= m["clean.accuracy"]
    # CROWN proves a real share of this small adversarially trained MLP at eps 0.02.
    assert m["certified.certified_accuracy@0.02"] > 0.3
    assert card["verdict"] == "PASS"


def test_a_sample_certified_and_attacked_fails_loudly(mlp):
    raw, data = mlp
    model = load_model(raw)
    ctx = RunContext(model=model, eval_set=data, standard=parse_standard(STANDARD),
                     domain=InputDomain(0.0, 1.0), device=torch.device("cpu"), seed=0,
                     batch_size=64)
    ctx.correct = model.runner.predict(data.x) == data.y
    # Claim every sample was broken by an attack: any certified sample contradicts that.
    ctx.per_sample["attacked_robust@0.02"] = np.zeros(len(data), dtype=bool)
    with pytest.raises(SoundnessError, match="soundness bug"):
        certified.run(ctx)


class _ExpInTheMiddle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.exp(self.a(torch.flatten(x, 1)) * 0.1))


def test_unsupported_op_makes_certified_criteria_inconclusive(tmp_path, mlp):
    _, data = mlp
    path = export_onnx(_ExpInTheMiddle().eval(), tmp_path / "exp.onnx")
    np.savez(tmp_path / "d.npz", x=data.x, y=data.y)
    card = certify(path.read_bytes(), load_eval_set(tmp_path / "d.npz"),
                   parse_standard(STANDARD.replace("0.5}", "0.0}")), seed=0)
    check = card["checks"]["certified"]
    assert check["status"] == "inconclusive"
    assert "not certifiable" in check["reason"] and "Exp" in check["reason"]
    assert card["verdict"] == "INCONCLUSIVE"


def test_crown_over_its_cost_limit_runs_ibp_and_leaves_criteria_inconclusive(mlp, monkeypatch):
    """A graph too large for CROWN (an ImageNet ResNet-50: months a sample) must not start a
    job that cannot finish: IBP runs, and the certified criteria say why they cannot PASS."""
    raw, data = mlp
    model = load_model(raw)
    standard = parse_standard(STANDARD)
    ctx = RunContext(model=model, eval_set=data, standard=standard,
                     domain=InputDomain(0.0, 1.0), device=torch.device("cpu"), seed=0,
                     batch_size=64)
    ctx.correct = model.runner.predict(data.x) == data.y
    monkeypatch.setattr(certified, "CROWN_MAX_COST", 0)
    result = certified.run(ctx)
    assert result.details["method"] == "ibp"
    assert "crown not run" in result.details["crown_skipped"]
    results, verdict, _ = evaluate(standard, {"certified": result}, n_samples=len(data))
    (crit,) = [r for r in results if r.criterion.check == "certified"]
    assert crit.result == "INCONCLUSIVE" and "crown not run" in crit.reason
    assert verdict == "INCONCLUSIVE"


def test_refinement_cost_is_bounded_neurons_times_their_upstream():
    # x[4] -> Gemm h1[5] -> Relu -> Gemm h2[3] -> Relu -> Gemm y[2]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (5, 4)), ("w2", (3, 5)), ("w3", (2, 3)))]
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h1"], transB=1),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Gemm", ["r1", "w2"], ["h2"], transB=1),
             helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("Gemm", ["r2", "w3"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    # h1 is affine in the input box, so IBP is exact there and CROWN leaves it alone;
    # h2: 3 neurons, each one backward pass through h2, r1 and h1 (3 + 5 + 5 numbers)
    built = build_graph(model)
    assert "h1" in built.exact_ibp
    assert refinement_cost(built) == 3 * 13
