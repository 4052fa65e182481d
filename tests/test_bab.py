"""Branch and bound (verifiers.bounds.bab): sound, complete where Marabou is, within its
deadline, and wired into ``verify_vnnlib``.

Instances are small random ReLU MLPs (examples/random_mlp.py) with properties
``y[a] - y[b] > t`` on a box, ``t`` placed between CROWN's lower bound and the smallest value
sampling finds: CROWN alone cannot decide them. Marabou is the exact referee.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from examples.random_mlp import crown_and_sampled, margin_region, onnx_bytes, random_mlp
from verifiers.bounds import LinearSpec, Method, bound_spec, build_graph
from verifiers.bounds.bab import BabConfig, branch_and_bound
from verifiers.bounds.complete import marabou_query
from verifiers.bounds.ops import Interval
from verifiers.bounds.verify import VerifyConfig, verify_vnnlib
from verifiers.errors import ShardTimeout
from verifiers.interrupt import Interrupt, watching
from verifiers.model import load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Instance:
    def __init__(self, sizes: tuple[int, ...], seed: int, eps: float, frac: float) -> None:
        self.model = random_mlp(sizes, seed)
        self.raw = onnx_bytes(self.model, sizes[0])
        self.loaded = load_model(self.raw)
        self.graph = build_graph(self.loaded.proto)
        rng = np.random.default_rng(seed)
        self.centre = rng.uniform(-1, 1, sizes[0])
        with torch.no_grad():
            y = self.model(torch.as_tensor(self.centre, dtype=torch.float32)[None])[0]
        self.a, self.b = int(y.argmax()), int(y.argmin())
        self.crown, self.sampled = crown_and_sampled(self.graph, self.model, self.centre, eps,
                                                     self.a, self.b)
        self.t = self.crown + frac * (self.sampled - self.crown)
        self.region = margin_region(sizes[0], sizes[-1], self.centre, eps, self.a, self.b,
                                    self.t)

    def bounds_prove(self, method: Method) -> bool:
        r = self.region
        box = Interval(torch.as_tensor(r.lower, dtype=torch.float32)[None],
                       torch.as_tensor(r.upper, dtype=torch.float32)[None])
        spec = LinearSpec(torch.as_tensor(r.C, dtype=torch.float32)[None],
                          torch.as_tensor(r.d, dtype=torch.float32)[None])
        return bool(bound_spec(self.graph, box, spec, method, require_all=False).proved[0])

    def bab(self, timeout: float = 20.0, **config) -> object:
        return branch_and_bound(self.graph, [self.region], self.loaded.runner,
                                BabConfig(**config), time.monotonic() + timeout)

    def marabou(self, tmp_path) -> str:
        path = tmp_path / "net.onnx"
        path.write_bytes(self.raw)
        r = self.region
        return marabou_query(path, r.lower, r.upper, r.C, r.d, 60).verdict

    def check_counterexample(self, result) -> None:
        ce = result.counterexample
        assert ce is not None
        assert np.all(ce.x >= self.region.lower) and np.all(ce.x <= self.region.upper)
        assert self.region.violated_by(self.loaded.runner.run(ce.x[None])[0])


def test_bab_proves_what_crown_and_alpha_crown_cannot(tmp_path):
    inst = Instance((8, 32, 32, 3), seed=1, eps=0.2, frac=0.5)
    assert not inst.bounds_prove(Method.CROWN)
    assert not inst.bounds_prove(Method.ALPHA_CROWN)
    result = inst.bab(split="relu")
    assert result.status == "holds", result.reason
    assert result.split == "relu" and result.domains > 1
    pytest.importorskip("maraboupy")
    assert inst.marabou(tmp_path) == "unsat"


@pytest.mark.parametrize("split", ["input", "relu"])
def test_bab_agrees_with_marabou_on_small_mlps(split, tmp_path):
    pytest.importorskip("maraboupy")
    crown_unknown = 0
    for seed in range(4):
        for frac in (0.5, 0.95, 1.2):
            inst = Instance((2, 8, 8, 2), seed=seed, eps=0.3, frac=frac)
            crown_unknown += not inst.bounds_prove(Method.CROWN)
            result = inst.bab(split=split)
            exact = inst.marabou(tmp_path)
            assert exact in ("sat", "unsat")
            assert result.status == {"sat": "violated", "unsat": "holds"}[exact], \
                (seed, frac, result.reason)
            if result.status == "violated":
                inst.check_counterexample(result)
    assert crown_unknown >= 8  # the t's sit above CROWN's bound: it proves none of these


def test_subdomains_with_every_relu_fixed_are_settled_exactly(tmp_path):
    """Tiny nets run out of neurons to split: a linear program decides those subdomains
    (its duals as beta: our own bound proves them), and its minimisers are counterexamples."""
    pytest.importorskip("scipy")
    pytest.importorskip("maraboupy")
    settled, lp_found = 0, 0
    for seed in (13, 19, 26, 27):
        for frac in (0.97, 0.995):
            inst = Instance((3, 5, 5, 2) if seed in (26, 27) else (4, 6, 6, 2), seed=seed,
                            eps=0.6 if seed in (26, 27) else 0.5, frac=frac)
            result = inst.bab(split="relu")
            exact = inst.marabou(tmp_path)
            assert result.status == {"sat": "violated", "unsat": "holds"}[exact], (seed, frac)
            settled += result.settled
            if result.status == "violated":
                inst.check_counterexample(result)
                lp_found += result.counterexample.found_by == "bab-lp"
    assert settled > 0 and lp_found > 0


def test_bab_never_holds_where_sampling_finds_a_violation():
    for seed in range(3):
        for sizes in ((2, 8, 8, 2), (8, 32, 32, 3)):
            inst = Instance(sizes, seed=seed, eps=0.3, frac=1.1)  # t above a sampled value
            result = inst.bab()
            assert result.status == "violated", result.reason
            inst.check_counterexample(result)


def test_input_splitting_on_a_three_input_network(tmp_path):
    inst = Instance((3, 16, 16, 2), seed=2, eps=0.4, frac=0.5)
    assert not inst.bounds_prove(Method.CROWN)
    result = inst.bab()  # auto: 3 inputs -> input splitting
    assert result.split == "input"
    assert result.status == "holds", result.reason
    pytest.importorskip("maraboupy")
    assert inst.marabou(tmp_path) == "unsat"


def test_deadline_and_cancel_give_unknown_in_time():
    inst = Instance((20, 64, 64, 64, 2), seed=0, eps=0.5, frac=0.5)
    budget = 1.0
    t0 = time.monotonic()
    result = inst.bab(timeout=budget, split="relu")
    elapsed = time.monotonic() - t0
    assert result.status == "unknown"
    assert "ran out of time" in result.reason
    assert result.open_regions == (0,)
    assert elapsed < budget + 2.5  # generous: the promise is budget + 1 s
    cancelled = branch_and_bound(inst.graph, [inst.region], inst.loaded.runner, BabConfig(),
                                 time.monotonic() + 60, cancel=lambda: True)
    assert cancelled.status == "unknown" and "cancelled" in cancelled.reason
    # a job's interrupt (verifiers.interrupt) reaches the loop too, and ends the run
    t0 = time.monotonic()
    with pytest.raises(ShardTimeout), watching(Interrupt(deadline=t0 + 0.3)):
        inst.bab(timeout=60, split="relu")
    assert time.monotonic() - t0 < 2.5


def _vnnlib(inst: Instance) -> str:
    r = inst.region
    lines = [f"(declare-const X_{i} Real)" for i in range(len(r.lower))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(r.C.shape[1])]
    for i, (lo, hi) in enumerate(zip(r.lower, r.upper, strict=True)):
        lines += [f"(assert (>= X_{i} {float(lo)!r}))", f"(assert (<= X_{i} {float(hi)!r}))"]
    # violation: y_a - y_b <= t
    lines.append(f"(assert (<= (- Y_{inst.a} Y_{inst.b}) {float(inst.t)!r}))")
    return "\n".join(lines)


def test_verify_vnnlib_runs_bab_on_what_the_bounds_leave_open():
    inst = Instance((8, 32, 32, 3), seed=1, eps=0.2, frac=0.5)
    text = _vnnlib(inst)
    off = verify_vnnlib(inst.raw, text, Method.ALPHA_CROWN, timeout=30,
                        config=VerifyConfig(marabou_max_neurons=0, bab=None))
    assert off.status == "unknown" and "neither proved nor falsified" in off.reason
    on = verify_vnnlib(inst.raw, text, Method.ALPHA_CROWN, timeout=30,
                       config=VerifyConfig(marabou_max_neurons=0))
    assert on.status == "holds", on.reason
    assert "bab" in on.decided_by
