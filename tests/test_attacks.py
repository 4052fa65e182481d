"""The adaptive attack battery on real digits models trained here (no mocks).

A normally trained CNN must fall at a large eps, an adversarially trained one must keep
clearly more; every counted example must hold up on onnxruntime; the cascade must be
reproducible and never weaker than its strongest single attack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from examples.digits import DigitsCNN, export_onnx, load_digits_split, train
from verifiers.assemble import robustbench_fields
from verifiers.attacks import Ball, RowRandom, Target, cascade
from verifiers.attacks.ball import numpy_norm, project
from verifiers.attacks.budget import PRESETS
from verifiers.attacks.fab import boundary_step
from verifiers.attacks.recheck import recheck
from verifiers.attacks.spatial import grid, transform
from verifiers.checks import RunContext, adversarial, clean, fidelity, sanity
from verifiers.data import InputDomain, validate_arrays
from verifiers.errors import StandardError
from verifiers.model import load_model
from verifiers.standards import evaluate, get_builtin, parse_standard

# Tiny models: one intra-op thread avoids OpenMP spin on a shared 2-core machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

DOMAIN = InputDomain(0.0, 1.0)
N_POINTS = 150
STANDARD = """
name: test-attacks
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model:
  - {norm: linf, eps: ["0.1", "0.3"]}
  - {norm: l2, eps: ["1.0"]}
  - {norm: l1, eps: ["2.0"]}
budget: {preset: quick}
attacks: [apgd-ce, apgd-t, fab-t, square, spatial, corruptions]
criteria:
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.65}
"""




@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    tmp = tmp_path_factory.mktemp("attacks")
    plain = train(DigitsCNN(), x_tr, y_tr, epochs=10, seed=0)
    robust = train(DigitsCNN(), x_tr, y_tr, epochs=10, adversarial_eps=0.1, seed=0)
    return {"plain": export_onnx(plain, tmp / "plain.onnx"),
            "robust": export_onnx(robust, tmp / "robust.onnx"),
            "x": x_ev[:N_POINTS], "y": y_ev[:N_POINTS]}


def run_checks(path: Path, x: np.ndarray, y: np.ndarray, document: str = STANDARD,
               seed: int = 0, drop_module: bool = False) -> RunContext:
    ctx = RunContext(model=load_model(path), eval_set=validate_arrays(x, y, "test"),
                     standard=parse_standard(document), domain=DOMAIN,
                     device=torch.device("cpu"), seed=seed, batch_size=128)
    for check in (clean, fidelity, adversarial, sanity):
        if check is adversarial and drop_module:
            # The state the fidelity check leaves when the conversion cannot be trusted.
            ctx.module, ctx.white_box_reason = None, "torch conversion failed (test)"
        ctx.results[check.NAME] = check.run(ctx)
    return ctx


@pytest.fixture(scope="module")
def plain_ctx(digits) -> RunContext:
    return run_checks(digits["plain"], digits["x"], digits["y"])


@pytest.fixture(scope="module")
def robust_ctx(digits) -> RunContext:
    return run_checks(digits["robust"], digits["x"], digits["y"])


def test_standard_model_falls_and_adversarial_training_keeps_more(plain_ctx, robust_ctx):
    plain = plain_ctx.results["adversarial"].metrics
    robust = robust_ctx.results["adversarial"].metrics
    assert plain_ctx.results["adversarial"].status == "ok"
    assert plain_ctx.results["sanity"].metrics["passed"] == 1.0
    assert plain["robust_accuracy@0.3"] <= 0.05
    assert robust["robust_accuracy@0.1"] >= plain["robust_accuracy@0.1"] + 0.15
    assert robust["robust_accuracy@0.1"] >= 0.65
    for m, ctx in ((plain, plain_ctx), (robust, robust_ctx)):
        clean_acc = ctx.results["clean"].metrics["accuracy"]
        assert clean_acc >= m["robust_accuracy@0.1"] >= m["robust_accuracy@0.3"]
        assert 0.0 <= m["l2.robust_accuracy@1.0"] <= clean_acc
        assert 0.0 <= m["l1.robust_accuracy@2.0"] <= clean_acc
        assert m["forward_passes"] > 0 and m["backward_passes"] > 0
        assert m["rejected_by_recheck"] >= 0
    verdict = evaluate(robust_ctx.standard, robust_ctx.results)[1]
    assert verdict == "PASS" and evaluate(plain_ctx.standard, plain_ctx.results)[1] == "FAIL"


@pytest.mark.parametrize("key,norm,label", [("", "linf", "0.1"), ("", "linf", "0.3"),
                                            ("l2.", "l2", "1.0"), ("l1.", "l1", "2.0")])
def test_every_counted_example_holds_on_onnxruntime(plain_ctx, key, norm, label):
    eps = float(label)
    ex = plain_ctx.per_sample[f"{key}adversarial_examples@{label}"]
    robust = plain_ctx.per_sample[f"{key}attacked_robust@{label}"]
    data = plain_ctx.eval_set
    idx, x_adv = ex["index"], ex["x_adv"]
    # Counted = clean-correct and not robust; each has exactly one confirmed example.
    assert np.array_equal(np.sort(idx), np.flatnonzero(plain_ctx.correct & ~robust))
    assert not (robust & ~plain_ctx.correct).any()
    assert len(idx) > 0
    assert (numpy_norm(x_adv - data.x[idx], norm) <= eps * (1 + 1e-6) + 1e-6).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (plain_ctx.model.runner.predict(x_adv) != data.y[idx]).all()


def test_recheck_refuses_examples_outside_the_l2_and_l1_balls(plain_ctx):
    runner, data = plain_ctx.model.runner, plain_ctx.eval_set
    x, y = data.x[:30], data.y[:30]
    flipped = (y + 1) % 10   # x itself is then "misclassified": only geometry can refuse
    bump = np.zeros_like(x)
    bump[:, 0, [0, 0, 7, 7], [0, 7, 0, 7]] = 0.2525  # L2 0.505, L1 1.01: just past both radii
    far = x + bump
    assert far.max() <= 1.0
    for norm, eps in (("l2", 0.5), ("l1", 1.0)):
        assert recheck(runner, x, x, flipped, Ball(norm, eps), DOMAIN).all()
        assert not recheck(runner, x, far, flipped, Ball(norm, eps), DOMAIN).any()
        inside = project(torch.from_numpy(x), torch.from_numpy(far), Ball(norm, eps), DOMAIN)
        assert recheck(runner, x, inside.numpy(), flipped, Ball(norm, eps), DOMAIN).all()
        assert (numpy_norm(inside.numpy() - x, norm) <= eps).all()


def test_same_seed_same_result(digits, plain_ctx):
    again = run_checks(digits["plain"], digits["x"], digits["y"])
    for name in ("adversarial", "sanity"):
        assert again.results[name].metrics == plain_ctx.results[name].metrics
    for key, value in plain_ctx.per_sample.items():
        other = again.per_sample[key]
        if isinstance(value, dict):
            assert all(np.array_equal(value[k], other[k]) for k in value)
        else:
            assert np.array_equal(value, other)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_cascade_never_weaker_than_its_strongest_single_attack(plain_ctx, norm, eps):
    data, runner = plain_ctx.eval_set, plain_ctx.model.runner
    target = Target(plain_ctx.module, runner, "logits", torch.device("cpu"))
    idx = np.flatnonzero(plain_ctx.correct)
    x, y, ball, budget = data.x[idx], data.y[idx], Ball(norm, eps), PRESETS["quick"]
    attacks = ("apgd-ce", "apgd-t", "fab-t", "square")
    rand = RowRandom.of(7, idx)
    full = cascade(target, x, y, ball, DOMAIN, budget, attacks, rand)
    singles = {a: cascade(target, x, y, ball, DOMAIN, budget, (a,), rand) for a in attacks}
    robust_single = {a: int((~r.fooled).sum()) for a, r in singles.items()}
    assert int((~full.fooled).sum()) <= min(robust_single.values())
    # The first attack sees the same points with the same per-point randomness: pointwise.
    assert not (singles["apgd-ce"].fooled & ~full.fooled).any()
    assert sum(full.successes.values()) == int(full.fooled.sum())
    assert full.successes["apgd-ce"] == int(singles["apgd-ce"].fooled.sum())


def test_l1_threat_model_runs_without_square(plain_ctx):
    adv = plain_ctx.results["adversarial"]
    assert "l1:square" in adv.details["skipped"]             # no black-box attack for L1
    assert adv.metrics["l1.successes.fab-t@2.0"] >= 0
    assert adv.metrics["l1.robust_accuracy@2.0"] < adv.metrics["robust_accuracy@0.1"]


def test_black_box_fallback_without_a_torch_module(digits):
    ctx = run_checks(digits["plain"], digits["x"], digits["y"], drop_module=True)
    adv = ctx.results["adversarial"]
    assert adv.status == "inconclusive" and "only black-box" in adv.reason
    assert adv.metrics["successes.square@0.1"] > 0          # Square still found examples
    assert adv.metrics["backward_passes"] == 0
    assert "linf:apgd-ce" in adv.details["skipped"]
    assert evaluate(ctx.standard, ctx.results)[1] != "PASS"
    assert ctx.results["sanity"].metrics["passed"] == 0.0
    # Gradient attacks only and no module: no robust accuracy at all, never the clean one.
    only_white = _document(attacks="attacks: [apgd-ce, fab-t]")
    ctx = run_checks(digits["plain"], digits["x"][:40], digits["y"][:40], only_white,
                     drop_module=True)
    assert not any("robust_accuracy" in k for k in ctx.results["adversarial"].metrics)
    assert evaluate(ctx.standard, ctx.results)[1] == "INCONCLUSIVE"


def test_autoattack_standard_is_selectable_and_rechecked(digits):
    document = """
name: test-aa
version: 1
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.3"]}
attacks: [autoattack-standard]
criteria:
  - {metric: adversarial.robust_accuracy@0.3, op: ">=", threshold: 0.5}
"""
    ctx = run_checks(digits["plain"], digits["x"][:60], digits["y"][:60], document)
    adv = ctx.results["adversarial"]
    assert adv.metrics["autoattack.robust_accuracy@0.3"] == adv.metrics["robust_accuracy@0.3"]
    assert adv.metrics["robust_accuracy@0.3"] <= 0.05
    assert adv.metrics["passes.autoattack-standard.forward"] > 0
    ex = ctx.per_sample["adversarial_examples@0.3"]
    assert (ctx.model.runner.predict(ex["x_adv"]) != ctx.eval_set.y[ex["index"]]).all()
    fields = robustbench_fields(ctx.results, ctx.standard)
    assert fields["autoattack_acc"] == adv.metrics["autoattack.robust_accuracy@0.3"]
    assert fields["eps"] == "0.3" and fields["threat_model"] == "Linf"


def test_spatial_and_corruption_sweeps(plain_ctx):
    m = plain_ctx.results["adversarial"].metrics
    assert m["spatial.transforms"] == len(grid(PRESETS["quick"].spatial)) == 45
    assert m["spatial.accuracy"] <= plain_ctx.results["clean"].metrics["accuracy"]
    x = torch.from_numpy(plain_ctx.eval_set.x[:5])
    assert torch.allclose(transform(x, 0.0, 0, 0, 0.0), x, atol=1e-6)
    assert torch.allclose(transform(x, 0.0, 1, 0, 0.0)[..., 1:], x[..., :-1], atol=1e-6)
    for name in ("gaussian_noise", "gaussian_blur", "contrast", "brightness"):
        for severity in (1, 3, 5):
            assert 0.0 <= m[f"corruption.{name}.{severity}.accuracy"] <= 1.0
    assert m["corruption.contrast.5.accuracy"] <= m["corruption.contrast.1.accuracy"]


def test_fab_boundary_projection_is_exact_and_feasible():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 20, generator=gen)
    w = torch.randn(64, 20, generator=gen)
    c = torch.rand(64, generator=gen)
    for norm in ("linf", "l2", "l1"):
        d = boundary_step(x, w, c, norm, DOMAIN)
        assert ((x + d) >= -1e-6).all() and ((x + d) <= 1 + 1e-6).all()
        room = torch.where(w >= 0, 1 - x, x)
        reachable = (w.abs() * room).sum(1) > c
        assert torch.allclose((d * w).sum(1)[reachable], c[reachable], atol=1e-4)
        # Minimal: shrinking the step by 1% no longer reaches the hyperplane.
        assert ((0.99 * d * w).sum(1)[reachable] < c[reachable]).all()


ATTACKS_LINE = "attacks: [apgd-ce, apgd-t, fab-t, square, spatial, corruptions]"


def _document(budget: str = "budget: {preset: quick}", attacks: str = ATTACKS_LINE) -> str:
    return STANDARD.replace("budget: {preset: quick}", budget).replace(ATTACKS_LINE, attacks)


def test_standard_threat_models_presets_and_attack_selection():
    demo = get_builtin("demo-digits")
    assert demo.attacks[0] == "pgd" and demo.pgd.steps == 20     # legacy budget still runs
    std = parse_standard(STANDARD)
    assert [t.norm for t in std.threats] == ["linf", "l2", "l1"] and std.norm == "linf"
    assert std.budget.preset == "quick" and std.budget.apgd_t.targets == 3
    custom = parse_standard(_document(
        "budget: {preset: thorough, apgd-t: {iterations: 7}, square: {queries: 11}}",
        "attacks: [square, apgd-t, apgd-ce]"))
    assert custom.budget.apgd_t.iterations == 7 and custom.budget.apgd_t.targets == 9
    assert custom.budget.square.queries == 11
    assert custom.attacks == ("apgd-ce", "apgd-t", "square")  # cascade order is fixed
    for budget in ("budget: {preset: fastest}", "budget: {apgd-t: {steps: 3}}",
                   "budget: {square: {queries: 0}}", "budget: {corruptions: {severities: [6]}}"):
        with pytest.raises(StandardError):
            parse_standard(_document(budget=budget))
    for attacks in ("attacks: [apgd-ce, pgd-7]", "attacks: []", "attacks: [square, square]"):
        with pytest.raises(StandardError):
            parse_standard(_document(attacks=attacks))
    with pytest.raises(StandardError):
        parse_standard(STANDARD.replace("norm: l2", "norm: linf"))   # two linf entries


def test_attacks_register_once_with_fixed_order_and_salts():
    """The cascade's menu comes from the registry; salts are part of the reproducibility
    contract (a run's random starts must not shift when an attack is added)."""
    from verifiers.attacks import registry
    from verifiers.attacks.battery import LP_ATTACKS
    from verifiers.attacks.budget import ATTACKS

    attacks = registry.lp_attacks()
    assert LP_ATTACKS == ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")
    assert [a.salt for a in attacks] == [0, 1, 2, 3, 4, 5]
    assert set(LP_ATTACKS) <= set(ATTACKS)  # every registered attack can be selected
    square = registry.get("square")
    assert square.unsupported("linf", white_box=False) == ""
    assert "supports" in square.unsupported("l1", white_box=True)
    assert "needs gradients" in registry.get("apgd-t").unsupported("linf", white_box=False)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(square)
