"""The complete tier (Marabou) as an exact oracle for the bound engine, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers.bounds import AlphaConfig, BoundConfig, Method, certify_samples, complete_certify
from verifiers.data import InputDomain
from verifiers.model import load_model

DOMAIN = InputDomain(0.0, 1.0)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def mlp_bytes(digits, tmp_path_factory):
    x_tr, y_tr, _, _ = digits
    model = train(DigitsMLP(16), x_tr, y_tr, epochs=8, seed=1)
    return export_onnx(model, tmp_path_factory.mktemp("complete") / "mlp.onnx").read_bytes()


@pytest.mark.parametrize("eps", [0.03, 0.08])
def test_engine_agrees_with_marabou(mlp_bytes, digits, eps):
    loaded = load_model(mlp_bytes)
    x, y = digits[2][:25], digits[3][:25]
    ours = certify_samples(loaded.proto, x, y, eps, DOMAIN, Method.ALPHA_CROWN,
                           config=BoundConfig(alpha=AlphaConfig(iterations=10)))
    exact = complete_certify(loaded, x, y, eps, DOMAIN, timeout_s=10)
    status = np.array([o.status for o in exact])
    # Sound: whatever the engine certifies, Marabou proves; no certified sample has a
    # counterexample. Complete tier: every counterexample really is one on onnxruntime.
    assert not (ours.certified & (status == "counterexample")).any()
    assert (status[ours.certified] == "verified").all()
    for outcome, xi, yi in zip(exact, x, y, strict=True):
        if outcome.status == "counterexample":
            ce = outcome.counterexample
            assert np.abs(ce - xi).max() <= eps + 1e-6
            assert ce.min() >= 0.0 and ce.max() <= 1.0
            assert loaded.runner.predict(ce[None])[0] != yi
    if eps == 0.03:
        assert ours.certified.sum() >= 10
    else:
        assert (status == "counterexample").sum() >= 1


def test_marabou_refusal_degrades_to_unknown(digits):
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    x_tr, y_tr, x_ev, y_ev = digits
    flat = x_tr.reshape(len(x_tr), -1)
    clf = MLPClassifier((16,), max_iter=30, random_state=0).fit(flat[:400], y_tr[:400])
    proto = to_onnx(clf, flat[:1], options={"zipmap": False})
    right = clf.predict(x_ev.reshape(len(x_ev), -1)) == y_ev  # a misclassified sample is
    x, y = x_ev[right][:3].reshape(3, -1), y_ev[right][:3]  # its own counterexample
    outcomes = complete_certify(proto.SerializeToString(), x, y, 0.02, DOMAIN, timeout_s=5)
    assert all(o.status == "unknown" for o in outcomes)
    assert "Marabou cannot read the model" in outcomes[0].reason
    # The bound engine reads the same model: bounds on the logits before its Softmax.
    result = certify_samples(proto, x, y, 0.001, DOMAIN, Method.CROWN)
    assert "Softmax" in result.note
    assert result.certified.all()
