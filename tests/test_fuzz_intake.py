"""Never crash: mutated models end as an accepted model or a clean IntakeError.

The cases run in child processes (verifiers.model.fuzz.harness), so a segfault inside
onnx/onnxruntime C++ shows up here as a 'crashed' outcome instead of killing pytest.
bench/intake_fuzz.py runs the same thing at scale.
"""

from __future__ import annotations

import collections
import ctypes
import io
import time
import warnings

import pytest
import torch
from torch import nn

from verifiers.model.fuzz.harness import intake_outcome, run_isolated
from verifiers.model.fuzz.mutations import PROTO_MUTATIONS, make_cases
from verifiers.model.fuzz.seeds import seed_models

N_CASES = 320


def _torchscript_seed() -> bytes:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5),
                        nn.Softmax(dim=1)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 4, 4),), buf, dynamo=False, opset_version=13,
                          input_names=["x"], output_names=["p"])
    return buf.getvalue()


@pytest.fixture(scope="module")
def outcomes():
    corpus = seed_models() | {"torchscript_mlp_softmax": _torchscript_seed()}
    cases = make_cases(corpus, N_CASES, seed=2026)
    results = list(run_isolated(((c.index, c.data) for c in cases), workers=2, timeout=60))
    return cases, results


def test_every_case_is_accepted_or_cleanly_refused(outcomes) -> None:
    cases, results = outcomes
    assert sorted(o.index for o in results) == [c.index for c in cases]
    by_index = {c.index: c for c in cases}
    bad = [(o.status, o.reason, o.message, by_index[o.index].seed_name,
            by_index[o.index].mutations) for o in results
           if o.status not in ("accepted", "refused")]
    assert not bad, bad[:5]


def test_the_corpus_exercises_many_refusals(outcomes) -> None:
    cases, results = outcomes
    statuses = collections.Counter(o.status for o in results)
    reasons = collections.Counter(o.reason for o in results if o.status == "refused")
    assert statuses["accepted"] >= 10  # unmutated and harmless mutations still load
    assert len(reasons) >= 10, reasons
    used = {m for c in cases for m in c.mutations}
    assert set(PROTO_MUTATIONS) <= used


def test_cases_are_reproducible() -> None:
    corpus = seed_models()
    a, b = make_cases(corpus, 40, seed=7), make_cases(corpus, 40, seed=7)
    assert [c.data for c in a] == [c.data for c in b]
    assert [c.data for c in a] != [c.data for c in make_cases(corpus, 40, seed=8)]


def crashing_target(data: bytes) -> tuple[str, str, str]:
    """Harness self-test: segfault, hang or intake, depending on the bytes."""
    if data == b"segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV in the child
    if data == b"hang":
        time.sleep(600)
    return intake_outcome(data)


def test_harness_survives_a_segfault_and_a_hang() -> None:
    valid = seed_models()["mlp_gemm_opset11"]
    cases = [(0, b"segfault"), (1, valid), (2, b"hang"), (3, b"junk"), (4, valid)]
    # 15 s: a valid case must never time out, even on a slow, shared 2-core machine where
    # the other child restarts (spawn, imports) beside it; the hang sleeps 600 s.
    results = {o.index: o for o in run_isolated(
        cases, workers=2, timeout=15, target=f"{__name__}:crashing_target")}
    assert results[0].status == "crashed" and "-11" in results[0].reason
    assert results[2].status == "timeout"
    assert results[1].status == results[4].status == "accepted"
    assert results[3].status == "refused"
