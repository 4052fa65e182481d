"""skl2onnx classifiers: the probability output is picked (ZipMap unwrapped), labels checked,
and a certification runs end to end whether or not the torch conversion works."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from verifiers import certify, get_builtin
from verifiers.data import validate_arrays
from verifiers.errors import IntakeError
from verifiers.model import load_model

CLASSIFIERS = {
    "mlp": lambda: MLPClassifier((24,), max_iter=120, random_state=0),
    "logreg": lambda: LogisticRegression(max_iter=60),
}


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)


@functools.cache
def _fitted(kind: str, label_offset: int = 0):
    x, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: accuracy is not the point here
        return CLASSIFIERS[kind]().fit(x[:600], y[:600] + label_offset)


def _export(clf, zipmap: bool) -> bytes:
    x, _ = _digits()
    options = None if zipmap else {id(clf): {"zipmap": False}}
    return to_onnx(clf, x[:1], options=options, target_opset=17).SerializeToString()


@pytest.mark.parametrize("zipmap", [True, False])
@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_probability_output_is_picked(kind: str, zipmap: bool) -> None:
    clf = _fitted(kind)
    loaded = load_model(_export(clf, zipmap))
    x, _ = _digits()
    assert loaded.num_classes == 10
    assert loaded.info.output_kind == "probabilities"
    assert loaded.info.batch == "dynamic"
    np.testing.assert_allclose(loaded.runner.run(x[1200:1300]),
                               clf.predict_proba(x[1200:1300]), atol=1e-5)
    assert any("ZipMap" in note for note in loaded.info.notes) == zipmap
    if kind == "mlp":  # its Softmax is found through the Identity skl2onnx puts after it
        assert loaded.info.logits_from.startswith("cut Softmax")


@pytest.mark.parametrize("zipmap", [True, False])
def test_labels_that_are_not_column_indices_are_refused(zipmap: bool) -> None:
    clf = _fitted("logreg", label_offset=3)  # classes 3..12: column j is not label j
    with pytest.raises(IntakeError) as info:
        load_model(_export(clf, zipmap))
    message = str(info.value)
    assert ("'zipmap': False" in message) if zipmap else ("label output" in message)


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_certification_runs_whatever_the_conversion_does(kind: str) -> None:
    x, y = _digits()
    card = certify(_export(_fitted(kind), zipmap=True), validate_arrays(x[1500:1540],
                   y[1500:1540], "t"), get_builtin("demo-digits"), seed=0)
    fid = card["checks"]["fidelity"]
    assert card["checks"]["clean"]["status"] == "ok"
    assert card["model"]["output"]["kind"] == "probabilities"
    if kind == "logreg":  # LinearClassifier (ai.onnx.ml) has no torch conversion
        assert fid["status"] == "inconclusive"
        assert "LinearClassifier" in fid["reason"]
        assert card["verdict"] != "PASS"
    else:
        assert fid["status"] == "ok", fid["reason"]
        assert fid["metrics"]["max_abs_diff"] < 1e-4
        assert "max_abs_diff_logits" in fid["metrics"]
