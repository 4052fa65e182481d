"""Randomness keyed by sample, so a point's attack never depends on its batch-mates.

A ``RowRandom`` derives each row's random numbers from (seed, sample id, draw). The same
point then gets the same random start whether it is attacked alone, in a cascade after other
attacks removed its neighbours, or in another shard of the job: results are reproducible
across batch sizes and sharding, and a cascade never loses a point its first attack would
have found alone. A plain ``torch.Generator`` is still accepted (one stream per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_MASK = (1 << 63) - 1


def mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style finaliser; stable across runs)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return (h ^ (h >> 29)) & _MASK


@dataclass(frozen=True)
class RowRandom:
    seed: int
    rows: torch.Tensor  # int64 sample ids on the CPU, one per row of the batch

    @classmethod
    def of(cls, seed: int, ids: np.ndarray | torch.Tensor) -> RowRandom:
        rows = torch.as_tensor(np.asarray(ids), dtype=torch.int64).cpu()
        return cls(int(seed) & _MASK, rows)

    def take(self, idx: torch.Tensor) -> RowRandom:
        return RowRandom(self.seed, self.rows[idx.cpu().long()])

    def repeat(self, k: int) -> RowRandom:
        """k copies of each row (a point attacked towards k targets), each its own stream."""
        rows = self.rows.repeat_interleave(k) * 4096 + torch.arange(k).repeat(len(self.rows))
        return RowRandom(self.seed, rows)

    def salted(self, *salt: int) -> RowRandom:
        return RowRandom(mix(self.seed, *salt), self.rows)

    def uniform(self, sample_shape: tuple[int, ...], draw: int) -> torch.Tensor:
        out = torch.empty((len(self.rows), *sample_shape))
        for i, row in enumerate(self.rows.tolist()):
            g = torch.Generator().manual_seed(mix(self.seed, row, draw))
            out[i] = torch.rand(sample_shape, generator=g)
        return out


Randomness = torch.Generator | RowRandom


def uniform(rand: Randomness, shape: torch.Size | tuple[int, ...], draw: int = 0
            ) -> torch.Tensor:
    """U[0, 1) of ``shape`` (batch first) on the CPU."""
    if isinstance(rand, RowRandom):
        assert len(rand.rows) == shape[0], "one sample id per row"
        return rand.uniform(tuple(shape[1:]), draw)
    return torch.rand(tuple(shape), generator=rand)


def take(rand: Randomness, idx: torch.Tensor) -> Randomness:
    return rand.take(idx) if isinstance(rand, RowRandom) else rand


def numpy_rng(rand: Randomness, salt: int) -> np.random.Generator:
    """A numpy generator for batch-level searches (Square): seeded from the batch's ids."""
    if isinstance(rand, RowRandom):
        first = int(rand.rows[0]) if len(rand.rows) else 0
        return np.random.default_rng(mix(rand.seed, salt, first, len(rand.rows)))
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rand)))
