"""Randomized-smoothing certificates (issue #19), on small digits models trained in seconds.

A CNN trained with Gaussian noise (sigma 0.25) gets radii > 0 for most samples it classifies
right; a model with a sharp input dependence (its class flips with the pixel sum's 20ths)
works without noise and abstains under it. The statistics (Clopper-Pearson, the radius, the
largest radius N samples allow) are checked against their closed forms.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import beta, norm
from torch import nn

from examples.digits import DigitsCNN, export_onnx, load_digits_split, train
from verifiers.catalogue import lookup
from verifiers.checks import BATTERY, RunContext, clean, fidelity, smoothing
from verifiers.data import InputDomain, validate_arrays
from verifiers.errors import StandardError
from verifiers.model import load_model
from verifiers.smoothing import (
    PRESETS,
    max_radius,
    p_lower,
    parse_smoothing,
    predict_test,
    radius,
)
from verifiers.standards import FAIL, INCONCLUSIVE, PASS, evaluate, parse_standard

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SECTION = 'smoothing: {preset: cpu, samples: 40, radii: ["0.25", "0.5", "1.0"]}\n'
CRITERIA = """\
  - {metric: smoothing.certified_accuracy@0.25, op: ">=", threshold: 0.5}
  - {metric: smoothing.certified_accuracy@1.0, op: ">=", threshold: 0.1, severity: advisory}
  - {metric: smoothing.abstain_rate, op: "<=", threshold: 0.3, severity: advisory}
"""
CLEAN = "  - {metric: clean.accuracy, op: '>=', threshold: 0.5}\n"


def _standard(section: str = SECTION, criteria: str = CRITERIA) -> str:
    return (f"name: smooth\nversion: 1\nthreat_model: {{norm: l2, eps: [\"0.5\"]}}\n"
            f"{section}criteria:\n{criteria}")


class Sharp(nn.Module):
    """Class = which tenth of a cycle the pixel sum x 20 falls in: right on clean inputs (the
    labels are its own predictions), a lottery once noise moves the sum by a few 1/20ths."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sum(dim=1, keepdim=True) * 20.0
        phase = s - torch.floor(s / 10.0) * 10.0
        centres = torch.arange(10, dtype=x.dtype).unsqueeze(0) + 0.5
        return -(phase - centres) ** 2


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    tmp = tmp_path_factory.mktemp("smoothing")
    torch.manual_seed(0)  # the initial weights: torch's default seed differs per process
    noisy = train(DigitsCNN(), x_tr, y_tr, epochs=8, seed=0, noise_sigma=0.25)
    with torch.no_grad():
        y_sharp = Sharp()(torch.from_numpy(x_ev)).argmax(1).numpy()
    return {"noisy": export_onnx(noisy, tmp / "noisy.onnx"),
            "sharp": export_onnx(Sharp(), tmp / "sharp.onnx"),
            "x": x_ev, "y": y_ev, "y_sharp": y_sharp}


def _run(path: Path, x: np.ndarray, y: np.ndarray, standard: str, seed: int = 0,
         trusted: bool = True) -> RunContext:
    ctx = RunContext(model=load_model(path), eval_set=validate_arrays(x, y, "test"),
                     standard=parse_standard(standard), domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=seed, batch_size=128)
    for check in (clean, fidelity) if trusted else (clean,):
        ctx.results[check.NAME] = check.run(ctx)
    ctx.results[smoothing.NAME] = smoothing.run(ctx)
    return ctx


def _per_sample(ctx: RunContext) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in ctx.results["smoothing"].details["per_sample"].items()}


def _by_metric(ctx: RunContext) -> dict:
    results, verdict, _ = evaluate(ctx.standard, ctx.results)
    return {r.criterion.metric: r for r in results} | {"verdict": verdict}


# -- statistics --------------------------------------------------------------------------------

def test_clopper_pearson_lower_bound():
    """One-sided (1 - alpha) Clopper-Pearson, as Cohen et al. compute it with statsmodels'
    proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]."""
    assert p_lower(990, 1000, 0.001) == pytest.approx(0.9760361871553114, rel=1e-9)
    for k, n, alpha in ((1, 10, 0.05), (55, 100, 0.001), (999, 1000, 0.01)):
        assert p_lower(k, n, alpha) == pytest.approx(beta.ppf(alpha, k, n - k + 1))
    assert p_lower(0, 100, 0.001) == 0.0
    assert p_lower(1000, 1000, 0.001) == pytest.approx(0.001 ** (1 / 1000), rel=1e-12)
    # More samples, same frequency: a tighter bound.
    assert p_lower(90, 100, 0.001) < p_lower(900, 1000, 0.001) < 0.9


def test_radius_formula_and_its_cap():
    assert radius(0.5, 0.25) == 0.0
    assert radius(norm.cdf(1.0), 0.25) == pytest.approx(0.25)
    assert radius(0.99, 0.5) == pytest.approx(0.5 * norm.ppf(0.99))
    with pytest.raises(ValueError):
        radius(0.4, 0.25)
    # The largest radius N samples certify: sigma * Phi^-1(alpha^(1/N)).
    assert max_radius(0.25, 1000, 0.001) == pytest.approx(0.25 * norm.ppf(0.001 ** 0.001))
    assert max_radius(0.25, 1000, 0.001) == pytest.approx(0.6158, abs=1e-4)
    assert max_radius(0.25, 100_000, 0.001) == pytest.approx(0.9529, abs=1e-4)
    assert radius(p_lower(1000, 1000, 0.001), 0.25) == pytest.approx(
        max_radius(0.25, 1000, 0.001))


def test_predict_binomial_test():
    assert not predict_test(60, 40, 0.05)     # p = 0.057
    assert predict_test(70, 30, 0.05)
    assert not predict_test(0, 0, 0.05)
    assert not predict_test(52, 48, 0.001)


# -- the standard's smoothing section ------------------------------------------------------------

def test_smoothing_section_parses_and_validates_with_lines():
    std = parse_standard(_standard())
    assert std.smoothing is not None and std.smoothing.preset == "cpu"
    assert std.smoothing.n == PRESETS["cpu"].n and std.smoothing.samples == 40
    assert [r.label for r in std.smoothing.radii] == ["0.25", "0.5", "1.0"]
    assert parse_standard(_standard("", CLEAN)).smoothing is None
    cfg = parse_smoothing({"preset": "standard", "sigma": 0.5, "radii": ["1/4", 0.5]})
    assert (cfg.n0, cfg.n, cfg.alpha, cfg.sigma) == (100, 100_000, 0.001, 0.5)
    assert [(r.value, r.label) for r in cfg.radii] == [(0.25, "1/4"), (0.5, "0.5")]
    bad = {
        "smoothing:\n  preset: gpu\n": r"^line 5: .*preset 'gpu' is unknown",
        "smoothing:\n  sigma: -1\n": r"^line 5: .*sigma must be a finite number > 0",
        "smoothing:\n  alpha: 0.7\n": r"^line 5: .*alpha must lie in \(0, 0.5\]",
        "smoothing:\n  n: 0\n": r"^line 5: .*smoothing.n must be an integer >= 1",
        "smoothing:\n  radii: [\"0.5\", x]\n": r"^line 5: .*is not a number",
        "smoothing:\n  radius: [0.5]\n": r"^line 5: .*unknown field",
        "smoothing: [1]\n": r"^line 4: .*must be a mapping",
    }
    for section, message in bad.items():
        with pytest.raises(StandardError, match=message):
            parse_standard(_standard(section, CLEAN))


def test_radius_placeholder_follows_the_smoothing_radii():
    match = lookup("smoothing.certified_accuracy@0.25")
    assert match.values == {"radius": "0.25"} and match.spec.bound == "lower"
    with pytest.raises(StandardError, match="smoothing section does not list"):
        parse_standard(_standard(criteria="  - {metric: smoothing.certified_accuracy@0.3, "
                                          "op: '>=', threshold: 0.5}\n"))
    with pytest.raises(StandardError, match="no smoothing section listing its radii"):
        parse_standard(_standard("", "  - {metric: smoothing.certified_accuracy@0.5, op: "
                                     "'>=', threshold: 0.5}\n"))
    with pytest.raises(StandardError, match="lower bound"):
        parse_standard(_standard(criteria="  - {metric: smoothing.certified_accuracy@0.5, "
                                          "op: '<=', threshold: 0.5}\n"))
    # Non-radius smoothing metrics need no section (the default preset runs).
    assert parse_standard(_standard("", "  - {metric: smoothing.abstain_rate, op: '<=', "
                                        "threshold: 0.5}\n")).smoothing is None


# -- the check on real models ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def noisy_run(models) -> RunContext:
    return _run(models["noisy"], models["x"], models["y"], _standard())


def test_noise_trained_model_gets_radii(models, noisy_run):
    ctx = noisy_run
    res = ctx.results["smoothing"]
    assert res.status == "ok" and res.details["base_classifier"].startswith("the trusted torch")
    ps = _per_sample(ctx)
    right = ps["certified_class"] == models["y"][ps["index"]]
    print("noise-trained:", res.metrics)
    assert right.mean() >= 0.8
    assert (ps["radius"][right] > 0).mean() >= 0.9
    assert res.metrics["certified_accuracy@0.25"] >= 0.6
    assert res.metrics["certified_accuracy@0.5"] <= res.metrics["certified_accuracy@0.25"]
    assert res.metrics["clean_accuracy"] >= 0.8 and res.metrics["abstain_rate"] <= 0.2
    assert res.metrics["n_samples"] == 40
    # Honest limits, in the details.
    assert "SMOOTHED classifier" in res.details["certificate_of"]
    assert "not floating-point sound" in res.details["floating_point"]
    assert "CPU tier" in res.details["cheap_tier"]
    by = _by_metric(ctx)
    assert by["smoothing.certified_accuracy@0.25"].result == PASS
    assert by["verdict"] == PASS


def test_radius_beyond_what_n_allows_is_inconclusive(noisy_run):
    ctx = noisy_run
    res = ctx.results["smoothing"]
    assert "certified_accuracy@1.0" not in res.metrics
    cap = res.metrics["max_certifiable_radius"]
    assert cap == pytest.approx(max_radius(0.25, 1000, 0.001))
    assert (np.asarray(res.details["per_sample"]["radius"]) <= cap + 1e-6).all()
    r = _by_metric(ctx)["smoothing.certified_accuracy@1.0"]
    assert r.result == INCONCLUSIVE
    assert "exceeds the largest radius" in r.reason and "raise smoothing.n" in r.reason


def test_sharp_model_abstains_under_noise(models):
    ctx = _run(models["sharp"], models["x"], models["y_sharp"], _standard())
    res = ctx.results["smoothing"]
    assert ctx.results["clean"].metrics["accuracy"] == 1.0   # perfect without noise
    print("sharp:", res.metrics)
    assert res.metrics["abstain_rate"] >= 0.9
    assert res.metrics["certified_accuracy@0.25"] <= 0.05
    assert res.metrics["clean_accuracy"] <= 0.1
    by = _by_metric(ctx)
    assert by["smoothing.certified_accuracy@0.25"].result == FAIL
    assert by["verdict"] == FAIL


def test_same_seed_same_radii_and_batch_does_not_matter(models):
    section = SECTION.replace("samples: 40", "samples: 12")
    a = _per_sample(_run(models["noisy"], models["x"], models["y"], _standard(section)))
    b = _per_sample(_run(models["noisy"], models["x"], models["y"], _standard(section)))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    smaller = section.replace("samples: 12", "samples: 12, batch: 128")
    c = _per_sample(_run(models["noisy"], models["x"], models["y"], _standard(smaller)))
    assert np.allclose(a["radius"], c["radius"], atol=1e-6)
    other = _per_sample(_run(models["noisy"], models["x"], models["y"], _standard(section),
                             seed=1))
    assert not np.array_equal(a["p_lower"], other["p_lower"])


def test_onnxruntime_base_classifier_without_a_trusted_module(models):
    section = SECTION.replace("samples: 40", "samples: 12")
    torch_ps = _per_sample(_run(models["noisy"], models["x"], models["y"], _standard(section)))
    ctx = _run(models["noisy"], models["x"], models["y"], _standard(section), trusted=False)
    assert ctx.results["smoothing"].details["base_classifier"].startswith("onnxruntime")
    ort_ps = _per_sample(ctx)
    # Same noise (CPU generator either way); the engines agree to float rounding.
    assert np.array_equal(torch_ps["certified_class"], ort_ps["certified_class"])
    assert np.allclose(torch_ps["radius"], ort_ps["radius"], atol=0.02)


def test_skipped_cheaply_when_the_standard_does_not_ask(models):
    plain = _standard("", CLEAN)
    ctx = RunContext(model=load_model(models["noisy"]),
                     eval_set=validate_arrays(models["x"], models["y"], "test"),
                     standard=parse_standard(plain), domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=0, batch_size=128)
    t0 = time.perf_counter()
    res = smoothing.run(ctx)
    assert time.perf_counter() - t0 < 0.05
    assert res.metrics == {} and "asks for no smoothing" in res.details["skipped"]
    assert res.details["not_obtained"] == {"*": smoothing.SKIPPED}
    assert "smoothing" in {c.name for c in BATTERY}
