"""VNN-LIB 1.0 reading and ``verify_vnnlib`` end to end (holds / violated / unknown)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from tests.test_bounds_helpers import onnx_model
from verifiers.bounds import (
    FalsifyConfig,
    Method,
    VerifyConfig,
    certify_samples,
    parse_vnnlib,
    verify_vnnlib,
)
from verifiers.data import InputDomain
from verifiers.errors import DataError
from verifiers.model import load_model

HEADER = "\n".join([*(f"(declare-const X_{i} Real)" for i in range(2)),
                    *(f"(declare-const Y_{j} Real)" for j in range(3))])
BOX = """
(assert (>= X_0 -0.5)) (assert (<= X_0 0.5))
(assert (>= X_1 0.0))  (assert (<= X_1 1e-1))
"""


def robustness_vnnlib(x: np.ndarray, eps: float, label: int, classes: int) -> str:
    flat = x.ravel().astype(np.float64)
    lines = [f"(declare-const X_{i} Real)" for i in range(flat.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(classes)]
    for i, v in enumerate(flat):
        lines += [f"(assert (>= X_{i} {float(max(0.0, v - eps))!r}))",
                  f"(assert (<= X_{i} {float(min(1.0, v + eps))!r}))"]
    rivals = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(classes) if j != label)
    return "\n".join([*lines, f"(assert (or {rivals}))"])


def test_parses_a_robustness_property():
    text = f"; a comment\n{HEADER}{BOX}(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0))))"
    prop = parse_vnnlib(text)
    assert (prop.num_inputs, prop.num_outputs, len(prop.regions)) == (2, 3, 2)
    first = prop.regions[0]
    np.testing.assert_allclose(first.lower, [-0.5, 0.0])
    np.testing.assert_allclose(first.upper, [0.5, 0.1])
    np.testing.assert_allclose(first.C, [[1.0, -1.0, 0.0]])  # Y_0 - Y_1 <= 0
    np.testing.assert_allclose(first.d, [0.0])
    assert first.violated_by(np.array([0.0, 1.0, 0.0]))
    assert not first.violated_by(np.array([1.0, 0.0, 0.0]))


def test_linear_terms_strictness_and_equalities():
    text = HEADER + BOX + """
    (assert (<= (+ Y_0 (* 2.5 Y_1) (- Y_2)) -1.5e0))
    (assert (< (- Y_0 Y_1) 3))
    (assert (= Y_2 0.25))
    """
    (region,) = parse_vnnlib(text).regions
    np.testing.assert_allclose(region.C, [[1, 2.5, -1], [1, -1, 0], [0, 0, 1], [0, 0, -1]])
    np.testing.assert_allclose(region.d, [1.5, -3, -0.25, 0.25])
    assert region.strict.tolist() == [False, True, False, False]
    y = np.array([-1.0, 0.0, 0.25])  # -1 - 0.25 <= -1.5? no: -1.25 > -1.5
    assert not region.violated_by(y)
    assert region.violated_by(np.array([-2.0, 0.0, 0.25]))


def test_disjunctions_multiply_out_and_may_carry_input_boxes():
    text = HEADER + """
    (assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_0 Y_1))
                (and (>= X_0 2) (<= X_0 3) (>= X_1 2) (<= X_1 3) (<= Y_0 Y_2))))
    (assert (or (<= Y_1 0) (>= Y_2 1)))
    """
    regions = parse_vnnlib(text).regions
    assert len(regions) == 4
    assert sorted(r.lower[0] for r in regions) == [0, 0, 2, 2]
    assert all(r.C.shape == (2, 3) for r in regions)


@pytest.mark.parametrize("body, message", [
    ("(assert (<= X_0 1)", "unbalanced"),
    ("(assert (<= X_0 1)) (assert (<= Y_0 1))", "lower and an upper bound"),
    ("(assert (<= X_0 Y_0))", "mixes input and output"),
    ("(assert (<= (* X_0 X_1) 1))", "nonlinear"),
    ("(assert (<= Y_7 1))", "not declared"),
    ("(check-sat)", "unsupported command"),
    ("(assert (not (<= Y_0 1)))", "unsupported formula"),
])
def test_malformed_properties_are_refused(body, message):
    box = "" if "lower and an upper" in message else BOX
    with pytest.raises(DataError, match=message):
        parse_vnnlib(HEADER + box + body)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsMLP(16), x_tr, y_tr, epochs=8, seed=2)
    raw = export_onnx(model, tmp_path_factory.mktemp("vnn") / "mlp.onnx").read_bytes()
    loaded = load_model(raw)
    right = loaded.runner.predict(x_ev) == y_ev
    return raw, loaded, x_ev[right][:30], y_ev[right][:30]


def test_small_ball_holds_by_bounds(setup):
    raw, _, x, y = setup
    result = verify_vnnlib(raw, robustness_vnnlib(x[0], 0.005, int(y[0]), 10), Method.CROWN)
    assert result.status == "holds", result.reason
    assert result.decided_by in {"ibp", "crown", "ibp+crown"}


def test_large_ball_is_violated_with_a_rechecked_counterexample(setup):
    raw, loaded, x, y = setup
    text = robustness_vnnlib(x[0], 0.5, int(y[0]), 10)
    result = verify_vnnlib(raw, text, Method.CROWN)
    assert result.status == "violated"
    assert result.counterexample.shape == x[0].shape
    assert np.abs(result.counterexample - x[0]).max() <= 0.5 + 1e-6
    out = loaded.runner.run(result.counterexample[None])[0]
    assert out.argmax() != y[0]
    assert any(r.violated_by(out) for r in parse_vnnlib(text).regions)


def test_marabou_settles_what_ibp_cannot(setup):
    raw, loaded, x, y = setup
    eps = 0.03
    ibp = certify_samples(loaded.proto, x, y, eps, InputDomain(0.0, 1.0), Method.IBP)
    crown = certify_samples(loaded.proto, x, y, eps, InputDomain(0.0, 1.0), Method.CROWN)
    i = int(np.flatnonzero(crown.certified & ~ibp.certified)[0])
    result = verify_vnnlib(raw, robustness_vnnlib(x[i], eps, int(y[i]), 10), Method.IBP,
                           timeout=30, config=VerifyConfig(bab=None))  # Marabou alone
    assert result.status == "holds", result.reason
    assert "marabou" in result.decided_by


def test_unknown_answers_carry_their_reason(setup):
    raw, _, x, y = setup
    text = robustness_vnnlib(x[1], 0.03, int(y[1]), 10)
    late = verify_vnnlib(raw, text, Method.ALPHA_CROWN, timeout=0.0)
    assert late.status == "unknown" and late.reason == "timeout after 0 s"
    quick = FalsifyConfig(samples=32, pgd_steps=10, pgd_restarts=2)
    too_big = verify_vnnlib(raw, text, Method.IBP,
                            config=VerifyConfig(marabou_max_neurons=0, falsify=quick))
    assert too_big.status in {"unknown", "holds"}
    if too_big.status == "unknown":
        assert "complete tier skipped" in too_big.reason
    wrong_size = verify_vnnlib(raw, HEADER + BOX + "(assert (<= Y_0 Y_1))")
    assert wrong_size.status == "unknown" and "inputs" in wrong_size.reason
    broken = verify_vnnlib(raw, "(assert")
    assert broken.status == "unknown" and "vnnlib" in broken.reason


def test_softmax_models_allow_only_order_comparisons():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", "W1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["p"], axis=-1)]
    inits = {"W1": rng.normal(size=(8, 2)).astype(np.float32),
             "W2": rng.normal(size=(3, 8)).astype(np.float32)}
    raw = onnx_model(nodes, inits, [2], "p").SerializeToString()
    x = np.array([0.3, 0.6], np.float32)
    label = int(load_model(raw).runner.predict(x[None])[0])
    ordered = verify_vnnlib(raw, robustness_vnnlib(x, 0.001, label, 3), Method.CROWN,
                            config=VerifyConfig(marabou_max_neurons=0))
    assert ordered.status == "holds" and ordered.decided_by in {"ibp", "crown"}
    threshold = robustness_vnnlib(x, 0.001, label, 3).rsplit("\n", 1)[0] + \
        f"\n(assert (>= Y_{label} 2.0))"  # a probability above 1: never, but not an order
    no_marabou = verify_vnnlib(raw, threshold, Method.CROWN,
                               config=VerifyConfig(marabou_max_neurons=0))
    assert no_marabou.status == "unknown"
    assert "not order comparisons" in no_marabou.reason
    exact = verify_vnnlib(raw, threshold, Method.CROWN)  # Marabou encodes the Softmax itself
    assert (exact.status, exact.decided_by) == ("holds", "marabou")
