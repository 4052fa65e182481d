"""``verify --timeout`` is a promise, and regions sharing a box share one bound pass.

Margins: the deadline tests allow one second beyond the timeout (the promise) and build
instances whose work takes far longer than the timeout, so neither depends on CPU speed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import helper

from tests.test_bounds_helpers import onnx_model
from verifiers.bounds import (
    AlphaConfig,
    BoundConfig,
    FalsifyConfig,
    LinearSpec,
    Method,
    VerifyConfig,
    bound_spec,
    build_graph,
    verify_vnnlib,
)
from verifiers.bounds.complete import marabou_queries
from verifiers.bounds.ops import Interval
from verifiers.bounds.passes import counting
from verifiers.errors import OutOfTime, ShardTimeout
from verifiers.interrupt import Interrupt, checkpoint, time_budget, watching
from verifiers.model import load_model


def mlp(sizes: list[int], seed: int) -> bytes:
    """A random ReLU MLP (He-scaled weights) as ONNX bytes."""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], {}, "x"
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        inits[f"W{k}"] = (rng.normal(size=(n_out, n_in)) * np.sqrt(2 / n_in)).astype(np.float32)
        inits[f"b{k}"] = (rng.normal(size=n_out) * 0.1).astype(np.float32)
        nodes.append(helper.make_node("Gemm", [prev, f"W{k}", f"b{k}"], [f"h{k}"], transB=1))
        prev = f"h{k}"
        if k < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{k}"]))
            prev = f"r{k}"
    return onnx_model(nodes, inits, [sizes[0]], prev).SerializeToString()


def vnnlib(boxes: list[tuple[np.ndarray, np.ndarray]], classes: int, label: int,
           margin: float = 0.0) -> str:
    """VIOLATED when, inside one of the boxes, some class beats ``label`` by ``margin``."""
    n = boxes[0][0].size
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(classes)]
    rivals = " ".join(f"(>= Y_{j} (+ Y_{label} {margin!r}))" for j in range(classes)
                      if j != label)
    cases = []
    for lo, hi in boxes:
        ins = " ".join(f"(>= X_{i} {float(a)!r}) (<= X_{i} {float(b)!r})"
                       for i, (a, b) in enumerate(zip(lo, hi, strict=True)))
        cases.append(f"(and {ins} (or {rivals}))")
    return "\n".join([*lines, f"(assert (or {' '.join(cases)}))"])


def test_a_budget_raises_its_own_error_after_the_outer_checker():
    with time_budget(0.0, "timeout after 0 s") as budget, pytest.raises(OutOfTime) as caught:
        checkpoint()
    assert budget.owns(caught.value) and str(caught.value) == "timeout after 0 s"
    shard = Interrupt(deadline=time.monotonic() - 1, timeout_reason="shard limit")
    with watching(shard), time_budget(60.0, "mine"), pytest.raises(ShardTimeout):
        checkpoint()  # the shard's limit is not this call's timeout


def test_a_hard_instance_answers_within_the_timeout():
    """A 784-1024x3-10 net on a wide box: its CROWN pass alone outlasts 2 s on a small CPU
    (alpha-CROWN iterations take ~1 s each), and the property (a rival ahead by 1e4) holds but
    is far beyond the bounds. The second config never stops alpha-CROWN by itself."""
    raw = mlp([784, 1024, 1024, 1024, 10], seed=0)
    centre = np.full(784, 0.5)
    text = vnnlib([(centre - 0.4, centre + 0.4)], 10, 0, margin=1e4)
    endless = VerifyConfig(bounds=BoundConfig(alpha=AlphaConfig(iterations=10_000,
                                                                patience=10_000)),
                           bounds_share=1.0, attack_share=1.0)
    for config in (VerifyConfig(), endless):
        t0 = time.perf_counter()
        result = verify_vnnlib(raw, text, Method.ALPHA_CROWN, timeout=2.0, config=config)
        wall = time.perf_counter() - t0
        assert result.status == "unknown", result.reason
        assert wall < 3.0, (wall, result.reason)
    assert result.reason == "timeout after 2 s"  # the endless run was cut by the deadline


def test_marabou_is_stopped_at_the_deadline(tmp_path: Path):
    """A 784-256x3-10 net on the whole unit box: Marabou needs far more than 3 s and its own
    whole-second timeout overruns; the child process is killed at the deadline."""
    raw = mlp([784, 256, 256, 256, 10], seed=1)
    path = tmp_path / "m.onnx"
    path.write_bytes(raw)
    xs = np.random.default_rng(0).random((500, 784)).astype(np.float32)
    ys = load_model(raw).runner.run(xs)
    row = np.zeros((1, 10))
    row[0, 0], row[0, 1] = 1.0, -1.0  # class 1 ahead of class 0 by twice the sampled most
    gap = 2 * max(float((ys[:, 1] - ys[:, 0]).max()), 0.05)
    t0 = time.perf_counter()
    (answer,) = marabou_queries(path, [(np.zeros(784), np.ones(784), row, np.array([gap]))],
                                3.0)
    assert time.perf_counter() - t0 < 4.0
    assert answer.verdict == "unknown"


def boxes_around(x: np.ndarray, eps: float) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x - eps, x + eps), (x + 0.5 - eps, x + 0.5 + eps)]


def test_regions_sharing_a_box_share_one_intermediate_pass():
    raw = mlp([20, 32, 32, 10], seed=2)
    x = np.linspace(0.1, 0.4, 20)
    label = int(load_model(raw).runner.predict(x[None].astype(np.float32))[0])
    text = vnnlib(boxes_around(x, 1e-3), 10, label)  # 2 boxes x 9 rival regions
    # No attack beyond the box centres and no cascade: every box must reach every stage.
    config = VerifyConfig(bounds=BoundConfig(cascade=False), marabou_max_neurons=0,
                          falsify=FalsifyConfig(samples=0, quick_steps=0, pgd_steps=0))
    with counting() as seen:
        result = verify_vnnlib(raw, text, Method.ALPHA_CROWN, config=config)
    assert result.status == "holds", result.reason
    assert seen["intermediate"] == 2  # one per box, not one per region (18)
    assert seen["alpha"] == 2


def test_one_spec_per_box_gives_the_bounds_of_separate_regions():
    raw = mlp([20, 32, 32, 10], seed=3)
    graph = build_graph(load_model(raw).proto)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.uniform(0.2, 0.8, size=(1, 20)), dtype=torch.float32)
    box = Interval(x - 0.05, x + 0.05)
    C = torch.zeros(1, 9, 10)
    for j in range(9):
        C[0, j, 0], C[0, j, j + 1] = 1.0, -1.0
    d = torch.zeros(1, 9)
    together = bound_spec(graph, box, LinearSpec(C, d), Method.CROWN,
                          BoundConfig(cascade=False), clauses=torch.arange(9))
    for j in range(9):
        alone = bound_spec(graph, box, LinearSpec(C[:, j:j + 1], d[:, j:j + 1]), Method.CROWN,
                           BoundConfig(cascade=False), require_all=False)
        assert torch.allclose(together.lower[0, j], alone.lower[0, 0], rtol=1e-5, atol=1e-5)
    assert bool(together.proved[0]) == bool((together.lower[0] > 0).all())


def test_time_spent_before_the_call_counts_when_the_caller_says_so():
    raw = mlp([20, 32, 10], seed=4)
    text = vnnlib([(np.zeros(20), np.ones(20))], 10, 0, margin=1e4)
    late = verify_vnnlib(raw, text, timeout=5.0, started=time.monotonic() - 10.0)
    assert (late.status, late.reason) == ("unknown", "timeout after 5 s")
