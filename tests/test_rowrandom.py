"""Counter-based per-sample randomness: a row's numbers depend on (seed, sample id, draw) only."""

from __future__ import annotations

import numpy as np
import torch

from verifiers.attacks.rowrandom import RowRandom


def test_a_rows_numbers_do_not_depend_on_its_batch():
    whole = RowRandom.of(11, np.arange(40)).uniform((3, 4, 4), draw=2)
    ids = np.array([37, 5, 12])
    alone = RowRandom.of(11, ids).uniform((3, 4, 4), draw=2)
    assert torch.equal(alone, whole[ids])
    assert torch.equal(RowRandom.of(11, np.arange(40)).take(torch.tensor([5])).uniform(
        (3, 4, 4), 2), whole[[5]])


def test_numbers_are_uniform_and_differ_by_seed_row_and_draw():
    u = RowRandom.of(3, np.arange(256)).uniform((3, 32, 32), draw=0)
    assert u.dtype == torch.float32 and float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    assert not torch.equal(u[0], u[1])
    assert not torch.equal(RowRandom.of(3, [0]).uniform((8,), 1)[0], u[0].flatten()[:8])
    assert not torch.equal(RowRandom.of(4, [0]).uniform((8,), 0)[0], u[0].flatten()[:8])
    # Odd sizes (not a multiple of four numbers per hash) keep the prefix property.
    assert torch.equal(RowRandom.of(3, [9]).uniform((7,), 0)[0],
                       RowRandom.of(3, [9]).uniform((8,), 0)[0, :7])
