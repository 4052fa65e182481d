"""OOD metrics and scores against scikit-learn and first principles; suites' shape and range."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from verifiers.data import InputDomain
from verifiers.errors import DataError, StandardError
from verifiers.ood import FAMILIES, OodConfig, build_suites, scores_from, user_suite
from verifiers.ood.metrics import auroc, average_precision, fpr_at_tpr
from verifiers.ood.report import suite_metrics, worst_case
from verifiers.ood.scores import conservative
from verifiers.ood.suites import _FAMILIES, spatial_axes


def _sklearn(score_in: np.ndarray, score_out: np.ndarray) -> tuple[float, float, float]:
    y = np.r_[np.ones(len(score_in)), np.zeros(len(score_out))]
    s = np.r_[score_in, score_out]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fpr95 = fpr[np.searchsorted(tpr, 0.95, side="left")]
    return roc_auc_score(y, s), average_precision_score(y, s), fpr95


@pytest.mark.parametrize("resolution", [0, 2, 10, 1000])
def test_metrics_match_sklearn_including_ties(resolution: int) -> None:
    rng = np.random.default_rng(resolution)
    for _ in range(60):
        n_in, n_out = rng.integers(1, 150, size=2)
        s_in, s_out = rng.normal(0.7, 1, n_in), rng.normal(0, 1, n_out)
        if resolution:  # coarse rounding creates many ties inside and across the two sets
            s_in, s_out = np.round(s_in * resolution), np.round(s_out * resolution)
        ref = _sklearn(s_in, s_out)
        got = (auroc(s_in, s_out), average_precision(s_in, s_out), fpr_at_tpr(s_in, s_out))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)


def test_metric_edge_cases() -> None:
    same = np.array([0.3, 0.3, 0.7])
    assert auroc(same, same) == pytest.approx(0.5, abs=1e-12)  # identical sets: chance level
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert fpr_at_tpr(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auroc(np.array([0.0]), np.array([1.0])) == 0.0
    # Infinite scores (our stand-in for NaN outputs) stay tied with each other.
    s_in, s_out = np.array([np.inf, 1.0, 0.5]), np.array([np.inf, np.inf, 0.0])
    np.testing.assert_allclose(
        (auroc(s_in, s_out), average_precision(s_in, s_out), fpr_at_tpr(s_in, s_out)),
        _sklearn(np.array([9.0, 1.0, 0.5]), np.array([9.0, 9.0, 0.0])), atol=1e-12)
    with pytest.raises(DataError):
        auroc(np.array([]), np.array([1.0]))
    with pytest.raises(DataError):
        auroc(np.array([np.nan]), np.array([1.0]))


def test_scores_sign_convention_and_non_finite_outputs() -> None:
    logits = np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 1.0], [np.nan, 0.0, 0.0]])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    s = scores_from(probs, logits)
    assert s.msp[0] > s.msp[1] and s.max_logit[0] > s.max_logit[1] and s.energy[0] > s.energy[1]
    assert s.energy[1] == pytest.approx(1.0 + np.log(3.0))  # logsumexp, i.e. -E(x)
    assert s.msp[1] == pytest.approx(1 / 3)
    assert s.non_finite.tolist() == [False, False, True]
    # NaN counts against the detector either way: rejected if ID, accepted if OOD.
    assert conservative(s.msp, True)[2] == -np.inf
    assert conservative(s.msp, False)[2] == np.inf


def test_suite_metrics_keys_and_worst_case() -> None:
    rng = np.random.default_rng(0)
    logits_in, logits_out = rng.normal(0, 4, (50, 10)), rng.normal(0, 1, (40, 10))
    soft = lambda z: np.exp(z) / np.exp(z).sum(1, keepdims=True)  # noqa: E731
    id_s, ood_s = scores_from(soft(logits_in), logits_in), scores_from(soft(logits_out), None)
    metrics, missing = suite_metrics("toy", id_s, ood_s, 0.95)
    assert missing == ["max_logit", "energy"]
    assert set(metrics) == {"toy.auroc.msp", "toy.fpr95.msp", "toy.aupr.msp",
                            "toy.mean_confidence", "toy.max_confidence"}
    assert metrics["toy.auroc.msp"] == pytest.approx(auroc(id_s.msp, ood_s.msp))
    both = {**metrics, "b.auroc.msp": 0.1, "b.fpr95.msp": 0.9, "b.aupr.msp": 0.2,
            "b.mean_confidence": 0.99, "b.max_confidence": 1.0}
    worst = worst_case(both, ["toy", "b"], 0.95)
    assert worst["worst.auroc.msp"] == 0.1 and worst["worst.fpr95.msp"] == 0.9
    assert "worst.auroc.energy" not in worst  # never aggregated over part of the suites


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 10, 12), (9, 7, 3), (20,)])
def test_suites_shape_range_determinism(shape: tuple[int, ...]) -> None:
    domain = InputDomain(-1.0, 2.0)
    rng = np.random.default_rng(1)
    x_id = rng.uniform(-1.0, 2.0, size=(30, *shape)).astype(np.float32)
    cfg = OodConfig(samples_per_suite=40)
    suites = build_suites(x_id, domain, cfg, seed=5)
    assert [s.name for s in suites] == list(FAMILIES) == list(_FAMILIES)
    for s in suites:
        assert s.x.shape[1:] == shape and s.x.dtype == np.float32
        inside = s.x.min() >= domain.low and s.x.max() <= domain.high
        assert inside == s.in_valid_range, s.name
    by_name = {s.name: s.x for s in suites}
    assert not by_name["far_away"].max() <= domain.high  # leaves the range on purpose
    # Position shuffles keep each sample's values, only move them.
    for name in ("permuted_pixels", "patch_shuffled"):
        flat = np.sort(by_name[name].reshape(len(by_name[name]), -1), axis=1)
        assert any(np.array_equal(flat[0], np.sort(x.ravel())) for x in x_id), name
    again = build_suites(x_id, domain, cfg, seed=5)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(suites, again, strict=True))
    other = build_suites(x_id, domain, cfg, seed=6)
    assert not np.array_equal(suites[0].x, other[0].x)
    # Each family has its own stream: dropping one leaves the others unchanged.
    fewer = build_suites(x_id, domain, OodConfig(samples_per_suite=40, families=("blobs",)), 5)
    assert np.array_equal(fewer[0].x, by_name["blobs"])


def test_spatial_axes_and_user_suite_validation() -> None:
    assert spatial_axes((3, 32, 32)) == (1, 2)
    assert spatial_axes((32, 32, 3)) == (0, 1)
    assert spatial_axes((64,)) == (0,)
    domain = InputDomain(0.0, 1.0)
    suite = user_suite(np.full((4, 1, 8, 8), 0.5, np.float32), (1, 8, 8), domain)
    assert suite.in_valid_range and suite.name == "user"
    with pytest.raises(DataError, match="shape"):
        user_suite(np.zeros((4, 64), np.float32), (1, 8, 8), domain)
    with pytest.raises(DataError, match="NaN"):
        user_suite(np.full((1, 1, 8, 8), np.nan, np.float32), (1, 8, 8), domain)
    with pytest.raises(StandardError):
        OodConfig(families=("no_such_family",))
