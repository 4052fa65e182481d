"""A standard's ``time_limit_s``: parsed under a ceiling, enforced inside every long loop, and
what it cuts is INCONCLUSIVE with the reason while the run still ends with a verdict."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from verifiers.data import load_eval_set
from verifiers.errors import Cancelled, StandardError, TimeLimitReached
from verifiers.estimate import estimate
from verifiers.interrupt import checkpoint, time_limit, watching
from verifiers.limits import Ceilings, over_ceilings
from verifiers.pipeline import certify
from verifiers.standards import get_builtin, parse_standard

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _demo(limit: str) -> str:
    return get_builtin("demo-digits").document + f"time_limit_s: {limit}\n"


def test_the_limit_parses_and_is_held_under_its_ceiling():
    assert parse_standard(_demo("90")).time_limit_s == 90.0
    assert get_builtin("demo-digits").time_limit_s is None
    for bad in ("0", "-5", "soon", "[1]"):
        with pytest.raises(StandardError, match=r"line \d+: .*time_limit_s"):
            parse_standard(_demo(bad))
    over = over_ceilings(parse_standard(_demo("7200")), Ceilings(time_limit_s=3600))
    assert over == ["time_limit_s = 7200.0 exceeds the ceiling time_limit_s <= 3600"]


def test_time_limit_raises_in_checkpoints_and_keeps_the_outer_checker():
    with time_limit(time.time() + 0.05, "time limit of 0.05 s reached"):
        checkpoint()  # not yet
        with pytest.raises(TimeLimitReached, match="0.05 s"):
            for _ in range(10_000):
                checkpoint()
                time.sleep(0.001)

    def cancelled() -> None:
        raise Cancelled("certification was cancelled")

    # A cancel stays a cancel (it ends the job) even with a time limit installed after it.
    with watching(cancelled), time_limit(time.time() - 1, "late"), pytest.raises(Cancelled):
        checkpoint()
    with time_limit(None, "never"):
        checkpoint()


def _run(limit: str) -> dict:
    return certify((EXAMPLES / "digits_cnn.onnx").read_bytes(),
                   load_eval_set((EXAMPLES / "digits_eval.npz").read_bytes()),
                   parse_standard(_demo(limit)))


def test_a_tiny_limit_makes_every_criterion_inconclusive_with_the_reason():
    card = _run("0.001")
    assert card["verdict"] == "INCONCLUSIVE"
    assert card["time_limit"]["reached"] and "clean" in card["time_limit"]["checks_cut"]
    assert all(c["result"] == "INCONCLUSIVE" and "time limit of 0.001 s reached" in c["reason"]
               for c in card["criteria"])
    assert card["checks"]["adversarial"]["metrics"] == {}


def test_a_limit_reached_mid_run_never_passes_what_it_cut(one_torch_thread):
    """Where the limit falls depends on the machine; what it cuts never passes."""
    card = _run("1.5")
    cut = set(card["time_limit"]["checks_cut"])
    assert cut, "the whole battery cannot finish in 1.5 s"
    for c in card["criteria"]:
        if c["metric"].split(".")[0] in cut:
            assert c["result"] == "INCONCLUSIVE" and "time limit of 1.5 s reached" in c["reason"]
            assert c["value"] is None
    if any(c["metric"].split(".")[0] in cut for c in card["criteria"]
           if c["severity"] == "required"):
        assert card["verdict"] != "PASS"


def test_estimate_from_the_running_step():
    # Nothing measured yet: no figure.
    assert estimate(0.1, 300, now=100.0, attacks_started=None, finish_started=None) is None
    assert estimate(0.1, 300, now=100.0, attacks_started=90.0, finish_started=None) is None
    # Half the attacks done in 10 s: 10 s left for them, 1/15 s per sample.
    e = estimate(0.35, 300, now=100.0, attacks_started=90.0, finish_started=None)
    assert e is not None and e.stage == "attacks"
    assert e.seconds_left == pytest.approx(10.0) and e.seconds_per_sample == pytest.approx(1 / 15)
    # A quarter of the finishing checks in 5 s: 15 s left.
    e = estimate(0.6 + 0.38 / 4, 300, now=100.0, attacks_started=50.0, finish_started=95.0)
    assert e is not None and e.stage == "finishing checks"
    assert e.seconds_left == pytest.approx(15.0)
