"""bench/attacks.py's CIFAR-size path, tiny: ours and AutoAttack on one ResNet-18, two seeds.

The figures issue 16 asks for come from a GPU run (scripts/gpu_check.sh); here a ResNet-18
with the cheap ImageNet stem, trained 30 steps on the synthetic task, is attacked on 6 points
with two seeds on the CPU, and the printed structure and the values' sanity are checked. The
radius is large (32/255) so every point falls to the first attack: a point that resisted would
send AutoAttack through Square's 5,000 queries (minutes on a CPU). No assertion depends on the
CPU's speed.
"""

from __future__ import annotations

import re

import pytest

from bench.attacks import main

SEEDS = (0, 1)
POINTS = 6


@pytest.fixture(scope="module")
def bench_run(one_torch_thread: None) -> tuple[list, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        results = main(["--model", "resnet18-cifar", "--stem", "imagenet", "--device", "cpu",
                        "--points", str(POINTS), "--seeds", ",".join(map(str, SEEDS)),
                        "--eps", "32/255", "--train-steps", "30", "--train-batch", "16",
                        "--batch", "64"])
    return results, out.getvalue()


def test_rows_are_sane(bench_run: tuple[list, str]) -> None:
    results, _ = bench_run
    (case,) = results
    assert case.points == POINTS and 0.0 < case.clean <= 1.0
    assert [r.seed for r in case.rows] == list(SEEDS)
    for r in case.rows:
        # Both attacks ran on the same points (the case's, hashed once).
        assert r.points_ours == r.points_aa == POINTS
        assert 0.0 <= r.acc_ours <= case.clean and 0.0 <= r.acc_aa <= case.clean
        # The accuracy difference is exactly the points one attack broke and the other not.
        assert r.acc_ours - r.acc_aa == pytest.approx((r.only_aa - r.only_ours) / POINTS)
        assert r.fwd_ours > 0 and r.fwd_aa > 0 and r.bwd_ours > 0 and r.bwd_aa > 0
        assert r.seconds_ours > 0 and r.seconds_aa > 0 and r.ratio > 0
        assert r.rejected_ours == 0 and r.rejected_aa == 0
    assert case.acc_ok == all(r.acc_ours <= r.acc_aa for r in case.rows)


def test_output_has_rows_spread_and_verdicts(bench_run: tuple[list, str]) -> None:
    results, text = bench_run
    (case,) = results
    assert f"{POINTS} points (sha256 {case.points_sha256[:12]})" in text
    assert "synthetic task (not CIFAR-10)" in text
    for seed in SEEDS:
        assert re.search(rf"^\s*{seed} \| .* \| .* \| .* \| .* \|", text, re.MULTILINE)
    assert "spread over 2 seed(s), min / median / max" in text
    acc = re.search(r"robust acc <= AutoAttack's on every seed: (yes|no)", text)
    ratio = re.search(r"wall ratio <= 0\.10 \(median\): (yes|no)", text)
    assert acc and ratio
    assert (acc.group(1) == "yes") == case.acc_ok
    assert (ratio.group(1) == "yes") == case.ratio_ok
