"""Randomness keyed by sample, so a point's attack never depends on its batch-mates.

A ``RowRandom`` derives each row's random numbers from (seed, sample id, draw). The same
point then gets the same random start whether it is attacked alone, in a cascade after other
attacks removed its neighbours, or in another shard of the job: results are reproducible
across batch sizes and sharding, and a cascade never loses a point its first attack would
have found alone. A plain ``torch.Generator`` is still accepted (one stream per batch).

The numbers are counter-based (SplitMix64: element i of a row is a hash of the row's key and
i), computed for the whole batch in a few integer tensor ops on the batch's own device. A
generator per row cost 5-100 us of host time per row and start; integer arithmetic is exact,
so the CPU and a GPU draw the same bits.
"""

from __future__ import annotations

import math
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

    def uniform(self, sample_shape: tuple[int, ...], draw: int,
                device: torch.device | str | None = None) -> torch.Tensor:
        """U[0, 1) float32, one independent stream per row, on ``device`` (default CPU)."""
        rows = self.rows.to(device or "cpu")
        keys = _fmix(rows * _GOLDEN + _signed(mix(self.seed, draw)))  # one key per row
        numel = math.prod(sample_shape)
        quarter = (numel + 3) // 4  # four 16-bit numbers per 64-bit hash
        counters = torch.arange(1, quarter + 1, dtype=torch.int64, device=rows.device) * _GOLDEN
        bits = _fmix(keys[:, None] + counters[None, :])
        parts = torch.stack([_shr(bits, 48), (bits >> 32) & 0xFFFF, (bits >> 16) & 0xFFFF,
                             bits & 0xFFFF], dim=2).reshape(len(rows), -1)[:, :numel]
        # Multiples of 2^-16 in [0, 1): exact in float32, and finer than any radius needs
        # for a random start.
        out = parts.to(torch.float32).mul_(1.0 / (1 << 16))
        return out.reshape(len(rows), *sample_shape)


# SplitMix64's constants as signed int64 (torch integer ops wrap modulo 2^64).
def _signed(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1, _M2 = _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic on signed values)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _fmix(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser, elementwise on int64."""
    z = (z ^ _shr(z, 30)).mul_(_M1)
    z = z.bitwise_xor_(_shr(z, 27)).mul_(_M2)
    return z.bitwise_xor_(_shr(z, 31))


Randomness = torch.Generator | RowRandom


def uniform(rand: Randomness, shape: torch.Size | tuple[int, ...], draw: int = 0,
            device: torch.device | str | None = None) -> torch.Tensor:
    """U[0, 1) of ``shape`` (batch first) on ``device`` (a plain generator draws on the CPU
    and the numbers are moved)."""
    if isinstance(rand, RowRandom):
        assert len(rand.rows) == shape[0], "one sample id per row"
        return rand.uniform(tuple(shape[1:]), draw, device)
    return torch.rand(tuple(shape), generator=rand).to(device or "cpu")


def take(rand: Randomness, idx: torch.Tensor) -> Randomness:
    return rand.take(idx) if isinstance(rand, RowRandom) else rand


def numpy_rng(rand: Randomness, salt: int) -> np.random.Generator:
    """A numpy generator for batch-level searches (Square): seeded from the batch's ids."""
    if isinstance(rand, RowRandom):
        first = int(rand.rows[0]) if len(rand.rows) else 0
        return np.random.default_rng(mix(rand.seed, salt, first, len(rand.rows)))
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rand)))
