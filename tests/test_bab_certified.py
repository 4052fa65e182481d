"""Branch and bound in the certified check: more samples certified, never one an attack broke,
and its per-sample budget validated like the standard's other budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from verifiers import parse_standard
from verifiers.checks import RunContext, certified
from verifiers.data import InputDomain, validate_arrays
from verifiers.errors import StandardError
from verifiers.limits import Ceilings, check_ceilings, over_ceilings
from verifiers.model import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _standard(extra: str = "") -> str:
    return f"""
name: bab-test
version: 1
input_domain: {{low: 0.0, high: 1.0, units: pixel intensity}}
threat_model: {{norm: linf, eps: ["0.05", "0.07"]}}
{extra}
criteria:
  - {{metric: certified.certified_accuracy@0.05, op: ">=", threshold: 0.3}}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    net = train(DigitsMLP(hidden=16), x_tr, y_tr, epochs=4, seed=0)  # well under 2 s
    raw = export_onnx(net, tmp_path_factory.mktemp("bab") / "mlp.onnx").read_bytes()
    return load_model(raw), validate_arrays(x_ev[:100], y_ev[:100], "digits-100")


def _run(model, batches: int, attacked_robust: dict | None = None, seconds: float = 60.0):
    loaded, data = model
    std = parse_standard(_standard(f"certified: {{bab_batches: {batches}, "
                                   f"bab_seconds: {seconds}}}"))
    ctx = RunContext(model=loaded, eval_set=data, standard=std, domain=InputDomain(0.0, 1.0),
                     device=torch.device("cpu"), seed=0, batch_size=64)
    ctx.correct = loaded.runner.predict(data.x) == data.y
    ctx.per_sample.update(attacked_robust or {})
    return ctx, certified.run(ctx)


def test_bab_raises_certified_accuracy_where_bounds_were_loose(model):
    _, without = _run(model, 0)
    ctx, with_bab = _run(model, 20)
    bab = with_bab.details["branch_and_bound"]
    assert without.details["branch_and_bound"]["tried"] == 0
    assert bab["tried"] > 0 and bab["time_capped"] == 0 and "partial" not in with_bab.details
    for eps in ("0.05", "0.07"):
        key = f"certified_accuracy@{eps}"
        assert with_bab.metrics[key] >= without.metrics[key]
    gained = sum(with_bab.metrics[k] - without.metrics[k] for k in without.metrics)
    assert gained > 0 and bab["certified"] > 0
    assert with_bab.details["certified_by"].get("bab", 0) == bab["certified"]
    # a sample not certified at 0.05 is not tried at 0.07: certified sets stay nested
    assert not (ctx.per_sample["certified@0.07"] & ~ctx.per_sample["certified@0.05"]).any()


def test_bab_never_certifies_a_sample_an_attack_broke(model):
    _, bounds_only = _run(model, 0)
    # Claim the attacks broke every sample the bounds alone did not certify.
    claims = {f"attacked_robust@{eps}": np.asarray(bounds_only_cert, dtype=bool)
              for eps, bounds_only_cert in _certified(model, 0).items()}
    ctx, result = _run(model, 20, claims)
    assert result.details["branch_and_bound"]["tried"] == 0
    assert result.metrics == bounds_only.metrics
    for eps, robust in claims.items():
        cert = ctx.per_sample[eps.replace("attacked_robust", "certified")]
        assert not (cert & ~robust).any()


def _certified(model, batches: int) -> dict[str, np.ndarray]:
    ctx, _ = _run(model, batches)
    return {k.split("@")[1]: v for k, v in ctx.per_sample.items() if k.startswith("certified@")}


def test_a_work_budget_gives_the_same_figures_and_a_time_cap_makes_them_inconclusive(model):
    """DESIGN: same inputs, same seed -> same metrics. The budget is counted in batches, so
    the figures cannot depend on the machine's speed; a wall-clock cap that cuts a sample
    first leaves the figures without a claim (INCONCLUSIVE), not with a slower machine's."""
    _, first = _run(model, 6)
    _, again = _run(model, 6)
    assert first.metrics == again.metrics
    counts = ("tried", "certified", "counterexamples", "undecided", "time_capped")
    assert [first.details["branch_and_bound"][k] for k in counts] == \
        [again.details["branch_and_bound"][k] for k in counts]
    _, capped = _run(model, 100_000, seconds=1e-9)
    assert capped.details["branch_and_bound"]["time_capped"] > 0
    assert "time cap" in capped.details["partial"]["certified_accuracy@*"]


def test_bab_budget_is_validated_and_capped():
    std = parse_standard(_standard())
    assert (std.certified.bab_batches, std.certified.bab_seconds) == (0, 10.0)  # off
    spec = parse_standard(_standard("certified: {bab_batches: 8, bab_seconds: 2}")).certified
    assert (spec.bab_batches, spec.bab_seconds) == (8, 2.0)
    for bad, words in (("bab_seconds: -1", ">= 0"), ("bab_seconds: 'soon'", "finite number"),
                       ("bab_seconds: 7200", "at most 3600"), ("bab_seconds: {}", "finite number"),
                       ("bab_batches: -1", "integer >= 0"), ("bab_batches: 1.5", "integer"),
                       ("bab_batches: 1000000", "<= 100000")):
        with pytest.raises(StandardError, match=words):
            parse_standard(_standard(f"certified: {{{bad}}}"))
    with pytest.raises(StandardError, match="unknown field"):
        parse_standard(_standard("certified: {bab_minutes: 1}"))
    std = parse_standard(_standard("certified: {bab_batches: 8, bab_seconds: 120}"))
    assert over_ceilings(std) == ["certified.bab_seconds = 120.0 exceeds the ceiling "
                                  "bab_seconds <= 60"]
    check_ceilings(std, Ceilings(bab_seconds=120))
    with pytest.raises(StandardError, match="bab_seconds"):
        check_ceilings(std)
