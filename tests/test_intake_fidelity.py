"""The fidelity gate: onnxruntime vs the torch conversion on the evaluation set AND on random
points of the perturbation set; above the tolerance, white-box analyses are switched off."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from onnx import TensorProto, helper, numpy_helper

from verifiers import get_builtin
from verifiers.checks import RunContext, fidelity
from verifiers.data import InputDomain, validate_arrays
from verifiers.model import load_model
from verifiers.model.fuzz import seeds

CPU = torch.device("cpu")


def _context(raw: bytes, n: int = 40, tolerance: float | None = None,
             seed: int = 0) -> RunContext:
    loaded = load_model(raw)
    shape = [int(d) for d in loaded.info.input_shape[1:]]
    rng = np.random.default_rng(11)
    x = rng.random((n, *shape), dtype=np.float32)
    y = rng.integers(0, loaded.num_classes, n)
    standard = get_builtin("demo-digits")
    if tolerance is not None:
        standard = dataclasses.replace(standard, fidelity_tolerance=tolerance)
    return RunContext(model=loaded, eval_set=validate_arrays(x, y, "t"), standard=standard,
                      domain=InputDomain(0.0, 1.0), device=CPU, seed=seed, batch_size=16)


def test_perturbation_points_lie_in_the_ball_and_the_domain() -> None:
    x = np.random.default_rng(0).random((50, 3, 4), dtype=np.float32)
    x[0] = 0.0  # on the edge of the domain: the box is clipped
    domain = InputDomain(0.0, 1.0)
    pts = fidelity.perturbation_points(x, 0.1, domain, torch.Generator().manual_seed(1), 1000)
    assert pts.shape == x.shape and pts.dtype == np.float32
    assert np.all(np.abs(pts - x) <= 0.1 + 1e-6)
    assert pts.min() >= 0.0 and pts.max() <= 1.0
    assert np.abs(pts - x).max() > 0.09  # spread over the ball, not collapsed on x
    again = fidelity.perturbation_points(x, 0.1, domain, torch.Generator().manual_seed(1), 1000)
    other = fidelity.perturbation_points(x, 0.1, domain, torch.Generator().manual_seed(2), 1000)
    np.testing.assert_array_equal(pts, again)
    assert not np.array_equal(pts, other)
    capped = fidelity.perturbation_points(x, 0.1, domain, torch.Generator().manual_seed(1), 7)
    assert len(capped) == 7


def test_both_sets_are_measured_and_the_gate_opens() -> None:
    ctx = _context(seeds.cnn_nhwc().SerializeToString())
    result = fidelity.run(ctx)
    m = result.metrics
    assert result.status == "ok"
    assert m["max_abs_diff"] == max(m["max_abs_diff_eval"], m["max_abs_diff_perturbation"])
    assert m["max_abs_diff"] < 1e-5
    assert result.details["points_eval"] == 40 and result.details["points_perturbation"] == 40
    assert result.details["perturbation_eps"] == ctx.standard.eps[-1].value
    assert ctx.module is not None and ctx.white_box_reason == ""


def test_softmax_model_is_also_compared_on_logits() -> None:
    ctx = _context(seeds.cnn_reshape(opset=12).SerializeToString())
    result = fidelity.run(ctx)
    assert result.status == "ok"
    assert "max_abs_diff_logits" in result.metrics
    assert result.metrics["max_abs_diff"] >= result.metrics["max_abs_diff_logits"]
    assert result.details["logits_from"].startswith("cut Softmax")


def test_above_tolerance_white_box_is_off() -> None:
    # A negative tolerance: any measured difference, even 0, is above it.
    ctx = _context(seeds.mlp_gemm(batch=None).SerializeToString(), tolerance=-1.0)
    result = fidelity.run(ctx)
    assert result.status == "ok" and result.metrics["tolerance"] == -1.0
    assert ctx.module is None
    assert "not trusted" in ctx.white_box_reason and "max_rel_diff_" in ctx.white_box_reason


def test_conversion_failure_is_inconclusive_with_the_reason() -> None:
    # Scaler (ai.onnx.ml) runs in onnxruntime but has no torch conversion.
    nodes = [helper.make_node("Scaler", ["input"], ["s"], domain="ai.onnx.ml",
                              offset=[0.5] * 6, scale=[2.0] * 6),
             helper.make_node("MatMul", ["s", "w"], ["output"])]
    w = numpy_helper.from_array(np.ones((6, 3), np.float32), "w")
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 6])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3])], [w])
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)]
    ctx = _context(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    result = fidelity.run(ctx)
    assert result.status == "inconclusive"
    assert "Scaler" in result.reason
    assert ctx.module is None and "white-box analyses not run" in ctx.white_box_reason


def test_seed_changes_only_the_perturbation_points() -> None:
    raw = seeds.mlp_squashing().SerializeToString()
    a = fidelity.run(_context(raw, seed=0)).metrics
    b = fidelity.run(_context(raw, seed=0)).metrics
    c = fidelity.run(_context(raw, seed=5)).metrics
    assert a == b
    assert a["max_abs_diff_eval"] == c["max_abs_diff_eval"]
