"""The OOD check on real digit models: outlier exposure, logits recovery, adversarial OOD."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from examples.digits import DigitsMLP, export_onnx, load_digits_split
from verifiers.checks import ood
from verifiers.checks.context import RunContext
from verifiers.data import InputDomain, validate_arrays
from verifiers.errors import DataError, SoundnessError
from verifiers.model import LoadedModel, load_model, to_torch
from verifiers.ood import AdversarialOodConfig, OodConfig, load_ood_x
from verifiers.standards import INCONCLUSIVE, PASS, evaluate, parse_standard

# Tiny models: one intra-op thread avoids OpenMP spin on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

STANDARD = parse_standard("""
name: ood-test
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.1"]}
criteria:
  - {metric: ood.uniform_noise.auroc.msp, op: ">=", threshold: 0.5}
  - {metric: ood.adversarial.max_confidence, op: "<=", threshold: 1.0}
""")
CONFIG = OodConfig(samples_per_suite=300,
                   adversarial=AdversarialOodConfig(samples=48, steps=30))
HELD_OUT = ("blobs", "inverted")  # OE below sees uniform noise only




def train_with_outlier_exposure(x: np.ndarray, y: np.ndarray, *, weight: float,
                                epochs: int = 15, seed: int = 0) -> nn.Module:
    """Cross-entropy plus, when weight > 0, Hendrycks et al.'s uniform-over-classes loss on
    uniform noise images (the one outlier family the model is shown)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitsMLP()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            idx = order[start:start + 64]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            if weight:
                noise = torch.rand((len(idx), *xt.shape[1:]), generator=generator)
                loss = loss - weight * F.log_softmax(model(noise), dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def make_ctx(model: LoadedModel, white_box: bool = True, seed: int = 0) -> RunContext:
    _, _, x_ev, y_ev = load_digits_split()
    ctx = RunContext(model=model, eval_set=validate_arrays(x_ev, y_ev, "digits-eval"),
                     standard=STANDARD, domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=seed, batch_size=256)
    if white_box:
        ctx.module = to_torch(model.proto, model.info.output_kind, ctx.device)
        ctx.white_box_reason = ""
    else:
        ctx.white_box_reason = "torch conversion refused for this test"
    return ctx


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    x_tr, y_tr, _, _ = load_digits_split()
    out = tmp_path_factory.mktemp("ood")
    plain = train_with_outlier_exposure(x_tr, y_tr, weight=0.0)
    exposed = train_with_outlier_exposure(x_tr, y_tr, weight=0.5)
    found = {}
    for name, net in (("plain", plain), ("exposed", exposed)):
        found[name] = load_model(export_onnx(net, out / f"{name}.onnx"))

    heads = {"softmax": nn.Softmax(dim=1), "logsoftmax": nn.LogSoftmax(dim=1),
             "hidden": HiddenSoftmax()}
    for name, head in heads.items():
        found[name] = load_model(export_onnx(nn.Sequential(plain, head), out / f"{name}.onnx"))
    return found


class HiddenSoftmax(nn.Module):
    """Softmax followed by a real op (x * 1): probabilities whose logits no one can cut out."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("one", torch.ones(10))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z, dim=1) * self.one


@pytest.fixture(scope="module")
def results(models: dict[str, LoadedModel]) -> dict[str, object]:
    return {name: ood.run(make_ctx(m), CONFIG) for name, m in models.items()}


def test_outlier_exposure_helps_on_held_out_families(results: dict) -> None:
    plain, exposed = results["plain"].metrics, results["exposed"].metrics
    for family in HELD_OUT:
        for score in ("msp", "energy"):
            key = f"{family}.auroc.{score}"
            assert exposed[key] > plain[key] + 0.1, (key, plain[key], exposed[key])
        assert exposed[f"{family}.mean_confidence"] < plain[f"{family}.mean_confidence"]
    # Hein et al.: bounded noise teaches nothing about inputs scaled far away.
    assert exposed["far_away.max_confidence"] > 0.99
    assert results["plain"].details["suites"]["far_away"]["in_valid_range"] is False


def test_scorecard_records_conventions_and_every_key(results: dict) -> None:
    result = results["plain"]
    d = result.details
    assert d["positive_class"] == "in-distribution"
    assert d["sign_convention"].startswith("higher score = more in-distribution")
    assert d["in_distribution"]["split"].startswith("evaluation set")
    assert d["in_distribution"]["n"] == 300 and d["in_distribution"]["sha256"] == "digits-eval"
    for family in (*CONFIG.families, "adversarial"):
        for metric in ("auroc", "fpr95", "aupr"):
            for score in ("msp", "max_logit", "energy"):
                value = result.metrics[f"{family}.{metric}.{score}"]
                assert 0.0 <= value <= 1.0
        assert result.metrics[f"{family}.mean_confidence"] <= result.metrics[
            f"{family}.max_confidence"]
    assert result.metrics["worst.auroc.msp"] == min(
        result.metrics[f"{f}.auroc.msp"] for f in CONFIG.families)
    assert result.metrics["worst_in_range.fpr95.energy"] == max(
        result.metrics[f"{f}.fpr95.energy"] for f in CONFIG.families if f != "far_away")
    assert d["worst_in_range_over"] == [f for f in CONFIG.families if f != "far_away"]
    assert "adversarial.certified_max_confidence" in d["not_obtained"]


@pytest.mark.parametrize(("name", "kind"), [("softmax", "probabilities"),
                                            ("logsoftmax", "log_probabilities")])
def test_logits_recovered_from_the_graph(results: dict, name: str, kind: str) -> None:
    soft, plain = results[name], results["plain"]
    assert soft.details["outputs"]["kind"] == kind
    assert soft.details["outputs"]["logits_from"].startswith("same graph, head cut")
    for family in CONFIG.families:
        for key in (f"{family}.auroc.energy", f"{family}.auroc.max_logit",
                    f"{family}.auroc.msp"):
            assert soft.metrics[key] == pytest.approx(plain.metrics[key], abs=1e-3), key


def test_unidentifiable_logits_leave_energy_not_obtained(results: dict) -> None:
    hidden, plain = results["hidden"], results["plain"]
    assert hidden.details["outputs"]["kind"] == "probabilities"
    assert not any(k.endswith((".energy", ".max_logit")) for k in hidden.metrics)
    assert "no Softmax/LogSoftmax head" in hidden.details["not_obtained"]["*.energy"]
    assert hidden.metrics["blobs.auroc.msp"] == pytest.approx(plain.metrics["blobs.auroc.msp"],
                                                              abs=1e-3)


def test_adversarial_ood_raises_confidence_inside_the_ball(results: dict,
                                                           models: dict) -> None:
    m = results["plain"].metrics
    adv = results["plain"].details["adversarial"]
    assert adv["status"] == "ok" and adv["eps"] == pytest.approx(0.3)
    start = adv["confidence_at_start"]
    assert m["adversarial.mean_confidence"] > start["mean_confidence"] + 0.05
    assert m["adversarial.max_confidence"] >= start["max_confidence"]
    assert m["adversarial.auroc.msp"] < m["uniform_noise.auroc.msp"]
    assert adv["torch_vs_onnxruntime_max_diff"] < 1e-4


def test_without_white_box_adversarial_is_inconclusive(models: dict) -> None:
    ctx = make_ctx(models["plain"], white_box=False)
    result = ood.run(ctx, OodConfig(samples_per_suite=50, families=("uniform_noise",)))
    assert not any(k.startswith("adversarial.") for k in result.metrics)
    assert "torch conversion refused" in result.details["not_obtained"]["adversarial.*"]
    crits, verdict, _ = evaluate(STANDARD, {"ood": result})
    assert [c.result for c in crits] == [PASS, INCONCLUSIVE] and verdict == INCONCLUSIVE


def test_user_set_same_run_same_metrics(models: dict) -> None:
    cfg = OodConfig(samples_per_suite=60, families=("uniform_noise", "blobs"),
                    adversarial=AdversarialOodConfig(samples=8, steps=3))
    ctx = make_ctx(models["plain"])
    buffer = io.BytesIO()
    np.savez(buffer, x=ctx.eval_set.x.astype(np.float64))
    ctx.ood_x = load_ood_x(buffer.getvalue())
    first = ood.run(ctx, cfg)
    # The evaluation set itself as "OOD": identical score sets, exactly chance level.
    assert first.metrics["user.auroc.msp"] == pytest.approx(0.5, abs=1e-12)
    assert first.metrics["user.auroc.energy"] == pytest.approx(0.5, abs=1e-12)
    assert "user" in first.details["worst_over"]
    fresh = make_ctx(models["plain"])
    fresh.ood_x = ctx.ood_x
    assert ood.run(fresh, cfg).metrics == first.metrics
    other = ood.run(make_ctx(models["plain"], seed=1), cfg)
    assert other.metrics["uniform_noise.auroc.msp"] != first.metrics["uniform_noise.auroc.msp"]
    ctx.ood_x = np.zeros((3, 64), np.float32)
    with pytest.raises(DataError, match="shape"):
        ood.run(ctx, cfg)
    with pytest.raises(DataError, match="lacks array 'x'"):
        buffer = io.BytesIO()
        np.savez(buffer, images=np.zeros((2, 1, 8, 8), np.float32))
        load_ood_x(buffer.getvalue())


def test_certified_hook_is_checked_against_the_attack(models: dict) -> None:
    cfg = OodConfig(samples_per_suite=20, families=("uniform_noise",),
                    adversarial=AdversarialOodConfig(samples=8, steps=10))
    ctx = make_ctx(models["plain"])

    def trivial(centres: np.ndarray, eps: float, domain: InputDomain) -> np.ndarray:
        return np.ones(len(centres))  # a true, if useless, bound on any probability

    result = ood.run(ctx, cfg, bound=trivial)
    assert result.metrics["adversarial.certified_max_confidence"] == 1.0

    def unsound(centres: np.ndarray, eps: float, domain: InputDomain) -> np.ndarray:
        return np.full(len(centres), 0.05)  # below what the attack reaches: a tool bug

    with pytest.raises(SoundnessError):
        ood.run(ctx, cfg, bound=unsound)



def test_a_standard_sets_the_suite_and_fooling_sizes_within_the_ceilings(models: dict) -> None:
    """The OOD check's sizes came from fixed defaults (512 a suite, 128 fooling images x 100
    steps: hours for an ImageNet ResNet-50 on a CPU); a standard's ``ood:`` section sets them,
    and the ceilings bound them like every other budget."""
    import dataclasses

    from verifiers.errors import StandardError
    from verifiers.limits import over_ceilings

    text = STANDARD.document + "ood: {samples_per_suite: 40, fooling_samples: 6, " \
                               "fooling_steps: 5}\n"
    small = parse_standard(text)
    assert (small.ood.samples_per_suite, small.ood.adversarial.samples,
            small.ood.adversarial.steps) == (40, 6, 5)
    assert STANDARD.ood.samples_per_suite == 512   # no section: the defaults
    ctx = make_ctx(models["plain"])
    ctx.standard = dataclasses.replace(small)
    result = ood.run(ctx)
    assert {d["n"] for name, d in result.details["suites"].items() if name != "user"} == {40}
    assert result.details["adversarial"]["samples"] == 6
    huge = parse_standard(STANDARD.document + "ood: {samples_per_suite: 1000000}\n")
    assert over_ceilings(huge) == ["ood.samples_per_suite = 1000000 exceeds the ceiling "
                                   "ood_samples <= 10000"]
    for bad in ("{samples_per_suite: 1}", "{fooling_steps: 0}", "{suites: 3}"):
        with pytest.raises(StandardError):
            parse_standard(STANDARD.document + f"ood: {bad}\n")
