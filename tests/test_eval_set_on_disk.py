"""Evaluation sets read from disk: memory-mapped, the same values as read into memory.

The memory test runs the loader in a fresh process (peak RSS is per process) on a ~200 MB set
of CIFAR-size samples (so one attack shard is small beside it) and asserts its peak resident
memory grows by well under the array's size: the margin is generous (1/3), so page-size and
allocator details cannot decide it.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from verifiers.data import load_eval_set, value_range
from verifiers.diskarrays import is_mapped, map_blocks, mean_std
from verifiers.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def _arrays(n: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((n, 3, 4, 4), dtype=np.float32)
    mask = np.zeros_like(x, dtype=bool)
    mask[:, 0] = True
    return {"x": x, "y": rng.integers(0, 5, n), "group": np.arange(n) % 2,
            "group_names": np.array(["a", "b"]), "mask": mask}


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_a_set_from_a_path_is_mapped_and_equals_the_one_from_bytes(tmp_path, save):
    path = tmp_path / "eval.npz"
    save(path, **_arrays())
    mapped, loaded = load_eval_set(path), load_eval_set(path.read_bytes())
    assert is_mapped(mapped.x) and is_mapped(mapped.mask) and not is_mapped(loaded.x)
    assert mapped.sha256 == loaded.sha256
    for field in ("x", "y", "group", "mask"):
        got, want = getattr(mapped, field), getattr(loaded, field)
        assert got.dtype == want.dtype and np.array_equal(got, want), field
    assert mapped.group_names == loaded.group_names
    assert not mapped.x.flags.writeable  # read-only: a check cannot edit the user's set


def test_a_float64_or_fortran_x_is_converted_on_disk(tmp_path):
    x = np.asfortranarray(np.random.default_rng(1).random((20, 6)))
    np.savez(tmp_path / "eval.npz", x=x, y=np.zeros(20, np.int64))
    got = load_eval_set(tmp_path / "eval.npz")
    assert is_mapped(got.x) and got.x.dtype == np.float32 and got.x.flags.c_contiguous
    assert np.array_equal(got.x, x.astype(np.float32))


def test_refusals_from_a_path_name_the_problem(tmp_path):
    bad = tmp_path / "nan.npz"
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.nan
    np.savez(bad, x=x, y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="NaN"):
        load_eval_set(bad)
    forged = tmp_path / "forged.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (2**40, 2**20)})
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 64)
        archive.writestr("y.npy", b"")
    with pytest.raises(DataError, match="declares shape"):
        load_eval_set(forged)
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, x=np.array([{}], dtype=object), y=np.zeros(1, np.int64))
    with pytest.raises(DataError, match="objects|pickle"):
        load_eval_set(pickled)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, x=np.zeros((40, 25_000), np.float32), y=np.zeros(40, np.int64))
    with pytest.raises(DataError, match="over the cap of 1000 bytes"):
        load_eval_set(bomb, max_decompressed=1000)
    missing = tmp_path / "missing.npz"
    np.savez(missing, x=x)
    with pytest.raises(DataError, match="lacks array"):
        load_eval_set(missing)


def test_block_helpers_equal_whole_array_results(tmp_path):
    x = np.random.default_rng(2).standard_normal((300, 1000)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert value_range(mapped) == (float(x.min()), float(x.max()))
    assert mean_std(mapped) == (float(x.mean()), float(x.std()))  # one block: exact
    doubled = map_blocks(mapped, lambda b: b * 2 + 1)
    assert is_mapped(doubled) and np.array_equal(doubled, x * 2 + 1)
    from verifiers import diskarrays

    small = diskarrays.BLOCK_BYTES
    try:  # many blocks: float64 combination, equal to float64 whole-array moments
        diskarrays.BLOCK_BYTES = 64 * 1024
        mean, std = mean_std(mapped)
        assert mean == pytest.approx(float(x.astype(np.float64).mean()), rel=1e-9, abs=1e-12)
        assert std == pytest.approx(float(x.astype(np.float64).std()), rel=1e-9)
    finally:
        diskarrays.BLOCK_BYTES = small


def test_loading_a_200_mb_set_keeps_peak_memory_far_below_its_size(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "memory.py"), "--samples", "16000",
         "--shape", "3", "32", "32", "--folder", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["array_bytes"] > 190e6
    assert figures["peak_rss_growth_bytes"] < figures["array_bytes"] / 3, figures


def test_spatial_and_corruptions_on_a_blocked_set_give_the_whole_set_figures(monkeypatch):
    """A set larger than one block is attacked block by block; per-sample outcomes (spatial)
    and the deterministic corruptions are exactly those of one pass over the whole set."""
    import torch

    from verifiers import diskarrays
    from verifiers.attacks.budget import PRESETS
    from verifiers.attacks.corruptions import corruption_sweep
    from verifiers.attacks.spatial import spatial_attack
    from verifiers.data import InputDomain
    from verifiers.model import load_model

    model = load_model(ROOT / "examples" / "digits_cnn.onnx")
    data = load_eval_set(ROOT / "examples" / "digits_eval.npz")
    x, y = data.x[:120], data.y[:120]
    domain, cpu = InputDomain(0.0, 1.0), torch.device("cpu")
    budget = PRESETS["quick"].spatial

    def run() -> tuple:
        spatial = spatial_attack(model.runner.predict, x, y, budget, domain, cpu)
        accs, passes = corruption_sweep(model.runner.predict, x, y, (1, 3), domain, cpu,
                                        torch.Generator().manual_seed(0))
        return spatial, accs, passes

    whole = run()
    monkeypatch.setattr(diskarrays, "BLOCK_BYTES", 40 * x[0].nbytes)  # three blocks
    blocked = run()
    assert np.array_equal(blocked[0].robust, whole[0].robust)
    assert np.array_equal(blocked[0].worst, whole[0].worst)
    assert blocked[0].forward_passes >= whole[0].forward_passes > 0
    assert blocked[2] == whole[2]
    for key, acc in whole[1].items():
        if not key.startswith("gaussian_noise"):  # noise is drawn per block, in block order
            assert blocked[1][key] == acc, key
