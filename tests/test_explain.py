"""Explainability criteria on real small models (issue #13).

Digits are drawn on a 10 x 10 canvas (a one-pixel empty border); the evidence mask is the
inner 8 x 8 where the digit is. A "watermark" model is trained with a label-coding pixel in
the top border (column = label) and, for 80% of its training samples, another sample's digit,
so the watermark is the only reliable cue; a "clean" model sees the border pixel at random
columns (uninformative) and the right digits. Both are evaluated on the same set, which
carries the label-coding watermark. With masks, the watermark model FAILS
``explain.relevance_mass_in_mask`` and ``explain.accuracy_background_removed``, the clean one
PASSES them. Thresholds keep >= 0.15 margins from the measured figures (printed with ``-s``).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.digits import export_onnx, load_digits_split, train
from verifiers.checks import BATTERY, RunContext, adversarial, clean, explain, fidelity
from verifiers.data import InputDomain, load_eval_set, validate_arrays
from verifiers.errors import DataError, StandardError
from verifiers.explain import spearman, weight_layers
from verifiers.model import load_model
from verifiers.report import render_html
from verifiers.standards import FAIL, INCONCLUSIVE, PASS, evaluate, parse_standard

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CRITERIA = """\
  - {metric: clean.accuracy, op: ">=", threshold: 0.8}
  - {metric: explain.relevance_mass_in_mask, op: ">=", threshold: 0.6}
  - {metric: explain.accuracy_background_removed, op: ">=", threshold: 0.8}
  - {metric: explain.accuracy_background_swapped, op: ">=", threshold: 0.8, severity: advisory}
  - {metric: explain.sanity.randomization_similarity, op: "<=", threshold: 0.5}
  - {metric: explain.max_sensitivity, op: "<=", threshold: 0.5, severity: advisory}
  - {metric: explain.deletion_auc, op: "<=", threshold: 0.3, severity: advisory}
  - {metric: explain.insertion_auc, op: ">=", threshold: 0.7, severity: advisory}
"""


def _standard(extra: str = "", criteria: str = CRITERIA) -> str:
    return ("name: explain\nversion: 1\ninput_domain: {low: 0, high: 1, units: pixels}\n"
            'threat_model: {norm: linf, eps: ["0.1"]}\nbudget: {preset: quick}\n'
            f"attacks: [apgd-ce]\n{extra}criteria:\n{criteria}")


class CanvasCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(32 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def _canvas(x: np.ndarray, column: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), 1, 10, 10), np.float32)
    out[:, :, 1:9, 1:9] = x
    out[np.arange(len(x)), 0, 0, column] = 1.0   # the border pixel, outside the digit
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    rng = np.random.default_rng(0)
    swapped = rng.random(len(x_tr)) < 0.8
    x_wm = x_tr.copy()
    x_wm[swapped] = x_tr[rng.permutation(len(x_tr))[:swapped.sum()]]
    tmp = tmp_path_factory.mktemp("explain")
    out = {
        "watermark": export_onnx(train(CanvasCNN(), _canvas(x_wm, y_tr), y_tr, epochs=6),
                                 tmp / "watermark.onnx", sample_shape=(1, 10, 10)),
        "clean": export_onnx(train(CanvasCNN(), _canvas(x_tr, rng.integers(0, 10, len(x_tr))),
                                   y_tr, epochs=6), tmp / "clean.onnx",
                             sample_shape=(1, 10, 10)),
    }
    out["x"], out["y"] = _canvas(x_ev, y_ev), y_ev
    out["mask"] = np.zeros(out["x"].shape, dtype=bool)
    out["mask"][:, :, 1:9, 1:9] = True
    return out


def _run(path, x, y, mask, standard: str, seed: int = 0,
         checks=(clean, fidelity, explain)) -> RunContext:
    ctx = RunContext(model=load_model(path), eval_set=validate_arrays(x, y, "t", mask=mask),
                     standard=parse_standard(standard), domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=seed, batch_size=256)
    for check in checks:
        ctx.results[check.NAME] = check.run(ctx)
    return ctx


def _judged(ctx: RunContext) -> dict:
    results, verdict, _ = evaluate(ctx.standard, ctx.results)
    return {r.criterion.metric: r for r in results} | {"verdict": verdict}


def _shown(ctx: RunContext) -> dict:
    m = ctx.results["explain"].metrics
    return {"clean": round(ctx.results["clean"].metrics["accuracy"], 3)} | {
        k: round(v, 3) for k, v in m.items()}


# --- mask reliance ---------------------------------------------------------------------------

def test_a_watermark_model_fails_the_mask_criteria_a_clean_one_passes(models):
    std = _standard()
    wm = _run(models["watermark"], models["x"], models["y"], models["mask"], std)
    cl = _run(models["clean"], models["x"], models["y"], models["mask"], std)
    fw, fc = _shown(wm), _shown(cl)
    print(f"\nwatermark model: {fw}\nclean model:     {fc}")
    rw, rc = _judged(wm), _judged(cl)
    # The watermark model is accurate on a set that carries the watermark...
    assert fw["clean"] >= 0.95 and rw["clean.accuracy"].result == PASS
    # ...and its evidence lies outside the mask: both mask criteria FAIL, with margin.
    assert fw["relevance_mass_in_mask"] <= 0.45
    assert fw["accuracy_background_removed"] <= 0.6
    assert fw["accuracy_background_swapped"] <= 0.5
    for key in ("relevance_mass_in_mask", "accuracy_background_removed"):
        assert rw[f"explain.{key}"].result == FAIL, rw[f"explain.{key}"].reason
    assert rw["verdict"] == FAIL
    # The clean model reads the digit.
    assert fc["relevance_mass_in_mask"] >= 0.8
    assert fc["accuracy_background_removed"] >= 0.9 and fc["accuracy_background_swapped"] >= 0.9
    for key in ("relevance_mass_in_mask", "accuracy_background_removed",
                "accuracy_background_swapped", "sanity.randomization_similarity"):
        assert rc[f"explain.{key}"].result == PASS, rc[f"explain.{key}"].reason
    assert rc["verdict"] == PASS
    # Both explanations pass the randomisation sanity check: nothing is gated.
    for ctx in (wm, cl):
        res = ctx.results["explain"]
        assert res.status == "ok" and not res.reason and "partial" not in res.details
        assert res.details["method"] == "integrated_gradients"
        assert res.details["counts"]["accuracy_background_removed"][0][1] == len(models["y"])
    # Faithfulness: deleting the most attributed pixels kills the score, inserting restores it.
    assert fc["deletion_auc"] <= 0.2 and fc["insertion_auc"] >= 0.8


def test_mask_criteria_without_masks_are_inconclusive(models):
    ctx = _run(models["clean"], models["x"], models["y"], None, _standard())
    res = _judged(ctx)
    for key in ("relevance_mass_in_mask", "accuracy_background_removed",
                "accuracy_background_swapped"):
        r = res[f"explain.{key}"]
        assert r.result == INCONCLUSIVE and "no masks in the evaluation set" in r.reason, r.reason
    assert res["verdict"] == INCONCLUSIVE
    assert res["explain.sanity.randomization_similarity"].result == PASS


# --- randomisation sanity --------------------------------------------------------------------

def test_randomisation_separates_the_model_from_its_reinitialised_copy(models):
    ctx = _run(models["clean"], models["x"], models["y"], models["mask"], _standard())
    res = ctx.results["explain"]
    cascade = res.details["cascade"]
    print("\ncascade:", [(c["down_to"], round(c["similarity"], 3),
                          round(c["similarity_abs"], 3)) for c in cascade])
    assert [c["layers_randomised"] for c in cascade] == [1, 2, 3, 4]
    assert [c["down_to"] for c in cascade][-1].endswith("conv1/Conv")
    assert len(weight_layers(ctx.model.proto)) == 4
    sim = res.metrics["sanity.randomization_similarity"]
    assert sim == cascade[-1]["similarity"] and abs(sim) <= 0.3
    assert all(abs(c["similarity"]) <= 0.35 for c in cascade)
    # The measure itself: a model compared with an unchanged copy is perfectly similar.
    a = np.random.default_rng(0).normal(size=(5, 1, 10, 10))
    assert np.allclose(spearman(a, a), 1.0) and np.allclose(spearman(a, -a), -1.0)


def test_a_failed_randomisation_check_makes_the_other_criteria_inconclusive(models):
    """A threshold below every possible similarity stands in for an explanation that does not
    change with the weights: every figure computed from the attributions is gated; the
    similarity criterion is still judged, and the attribution-free accuracies stay decided."""
    ctx = _run(models["watermark"], models["x"], models["y"], models["mask"],
               _standard("explain: {randomization_threshold: -1.0}\n"))
    res, check = _judged(ctx), ctx.results["explain"]
    assert "does not reflect what the model learned" in check.reason
    for key in ("relevance_mass_in_mask", "max_sensitivity", "deletion_auc", "insertion_auc"):
        r = res[f"explain.{key}"]
        assert r.result == INCONCLUSIVE and "re-initialised" in r.reason, (key, r.reason)
    assert res["explain.sanity.randomization_similarity"].result == PASS
    assert res["explain.accuracy_background_removed"].result == FAIL


# --- seeds, occlusion, intake -----------------------------------------------------------------

def test_same_seed_same_metrics_and_occlusion_without_a_trusted_conversion(models):
    x, y, mask = models["x"][:120], models["y"][:120], models["mask"][:120]
    std = _standard("explain: {samples: 24, steps: 8, perturbations: 4}\n")
    a = _run(models["clean"], x, y, mask, std, seed=3)
    b = _run(models["clean"], x, y, mask, std, seed=3)
    assert a.results["explain"].metrics == b.results["explain"].metrics
    assert a.results["explain"].details["subset"] == b.results["explain"].details["subset"]
    other = _run(models["clean"], x, y, mask, std, seed=4)
    assert other.results["explain"].details["subset"] != a.results["explain"].details["subset"]
    # No trusted torch conversion: occlusion on onnxruntime, same questions answered.
    a.module, a.white_box_reason = None, "conversion refused for this test"
    blind = explain.run(a)
    assert blind.details["method"] == "occlusion" and blind.details["runtime"] == "onnxruntime"
    assert blind.details["why_not_white_box"] == "conversion refused for this test"
    print("\nocclusion:", {k: round(v, 3) for k, v in blind.metrics.items()})
    assert blind.metrics["relevance_mass_in_mask"] >= 0.8
    assert abs(blind.metrics["sanity.randomization_similarity"]) <= 0.35
    assert blind.metrics == explain.run(a).metrics


def test_masks_in_the_npz_and_the_explain_section_are_validated(models):
    buf = io.BytesIO()
    np.savez(buf, x=models["x"][:4], y=models["y"][:4], mask=models["mask"][:4])
    assert load_eval_set(buf.getvalue()).mask.shape == (4, 1, 10, 10)
    x, y = models["x"][:4], models["y"][:4]
    with pytest.raises(DataError, match="boolean"):
        validate_arrays(x, y, mask=models["mask"][:4].astype(np.uint8))
    with pytest.raises(DataError, match="shape"):
        validate_arrays(x, y, mask=models["mask"][:4, 0])
    empty = models["mask"][:4].copy()
    empty[2] = False
    with pytest.raises(DataError, match="sample 2 is all False"):
        validate_arrays(x, y, mask=empty)
    assert parse_standard(_standard()).explain.samples == 64
    spec = parse_standard(_standard("explain: {samples: 8, method: gradient_x_input}\n")).explain
    assert (spec.samples, spec.method) == (8, "gradient_x_input")
    for bad, match in (("{sample: 8}", "unknown field"), ("{baseline: 2}", "outside the input"),
                       ("{randomization_threshold: 2}", r"\[-1, 1\]"),
                       ("{method: lime}", "must be one of"), ("{samples: 0}", ">= 1")):
        with pytest.raises(StandardError, match=match):
            parse_standard(_standard(f"explain: {bad}\n"))
    names = [c.name for c in BATTERY]
    assert names.index("explain") > names.index("adversarial")


def test_explanations_run_only_when_the_standard_asks_for_them(models):
    """Like smoothing: no ``explain:`` section and no ``explain.*`` criterion, no work (and
    the check says why); either one alone asks for it."""
    x, y, mask = models["x"][:120], models["y"][:120], models["mask"][:120]
    plain = "  - {metric: clean.accuracy, op: '>=', threshold: 0.5, severity: required}\n"
    assert not parse_standard(_standard(criteria=plain)).explain_requested
    assert parse_standard(_standard("explain: {samples: 8}\n", criteria=plain)).explain_requested
    assert parse_standard(_standard()).explain_requested  # CRITERIA name explain metrics
    skipped = _run(models["clean"], x, y, mask, _standard(criteria=plain), seed=3)
    result = skipped.results["explain"]
    assert result.metrics == {} and "asks for no explanations" in result.details["skipped"]
    asked = _run(models["clean"], x, y, mask,
                 _standard("explain: {samples: 8, steps: 4, perturbations: 2}\n",
                           criteria=plain), seed=3)
    assert asked.results["explain"].metrics["n_samples"] == 8


# --- the report ------------------------------------------------------------------------------

def test_report_shows_maps_of_samples_and_their_adversarial_examples(models):
    x, y, mask = models["x"][:40], models["y"][:40], models["mask"][:40]
    ctx = _run(models["clean"], x, y, mask,
               _standard("explain: {samples: 16, steps: 8, perturbations: 2}\n"),
               checks=(clean, fidelity, adversarial, explain))
    maps = ctx.results["explain"].details["maps"]
    found = ctx.per_sample["adversarial_examples@0.1"]
    print(f"\n{len(found['index'])} confirmed adversarial examples at 0.1")
    assert len(found["index"]) >= 1 and 1 <= len(maps) <= 4
    assert all("adversarial" in m for m in maps)
    assert [m["index"] for m in maps] == found["index"][:len(maps)].tolist()
    assert all(m["adversarial"]["prediction"] != m["label"] for m in maps)
    assert np.array(maps[0]["attribution"]).shape == (10, 10)
    card = {"verdict": "FAIL", "checks": {name: r.as_dict() for name, r in ctx.results.items()}}
    html = render_html(card)
    assert 'id="explanations"' in html
    assert html.count('data-map="attribution"') == 2 * len(maps)
    assert html.count('data-map="mask"') == len(maps)
    section = html[html.index('id="explanations"'):]
    section = section[:section.index("</section>")]
    assert section.count("data:image/png;base64,") == 5 * len(maps)


def test_integrated_gradients_on_large_inputs_runs_a_few_images_at_a_time():
    """All steps of a batch in one pass is right for digits, and 13.8 GB for two ImageNet
    samples on a ResNet-50: large inputs go through a capped internal batch, with the same
    attributions."""
    from captum.attr import IntegratedGradients

    from verifiers.explain.attributions import _MAX_IG_BATCH_NUMBERS, white_box

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 3)).eval()
    seen: list[int] = []
    model[0].register_forward_hook(lambda _m, inputs, _out: seen.append(len(inputs[0])))
    x = torch.rand(2, 3, 256, 256)
    target = torch.tensor([0, 2])
    got = white_box(model, "integrated_gradients", 0.0, 8, torch.device("cpu")).fn(x, target)
    cap = _MAX_IG_BATCH_NUMBERS // x[0].numel()
    assert 1 <= max(seen) <= cap < 2 * 8   # capped below the 16 inputs of one whole pass
    seen.clear()
    whole = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=8, method="gausslegendre",
        internal_batch_size=16)
    assert max(seen) == 16
    assert torch.allclose(got, whole, rtol=1e-4, atol=1e-6)
