"""Subdomains of a branch-and-bound search, stored column-wise (one tensor per field).

A subdomain is a region of the property (its index), an input box, the intermediate bounds
that hold on it (split neurons clamped at 0), the split history (signs per ReLU input), the
warm-start slopes/multipliers of its last bound, and its best lower bound per spec row.
Batches are taken and put back as whole tensors, so a batch of subdomains is bounded in one
pass of the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from verifiers.bounds.ops import Interval


@dataclass
class Domains:
    region: Tensor  # [N] long: which region of the property
    bounds: dict[str, Interval]  # every tensor the search keeps ([N, *shape]), input box included
    signs: dict[str, Tensor]  # split tensor -> int8 [N, *shape]: +1 active, -1 inactive, 0 open
    alphas: dict[str, Tensor]  # ReLU output -> [N, S, *shape]
    betas: dict[str, Tensor]  # split tensor -> [N, S, *shape]
    lower: Tensor  # [N, S] best lower bound of C y + d
    depth: Tensor  # [N] number of splits

    def __len__(self) -> int:
        return len(self.region)

    def score(self) -> Tensor:
        """Per subdomain: the best row (the subdomain is proved once one row is positive)."""
        return self.lower.max(1).values

    def map(self, fn: Callable[[Tensor], Tensor]) -> Domains:
        return Domains(fn(self.region),
                       {k: Interval(fn(v.lower), fn(v.upper)) for k, v in self.bounds.items()},
                       {k: fn(v) for k, v in self.signs.items()},
                       {k: fn(v) for k, v in self.alphas.items()},
                       {k: fn(v) for k, v in self.betas.items()},
                       fn(self.lower), fn(self.depth))

    def tensors(self) -> Iterator[Tensor]:
        """Every field's tensor, in an order fixed by the names (not by insertion)."""
        yield self.region
        for k in sorted(self.bounds):
            yield self.bounds[k].lower
            yield self.bounds[k].upper
        for group in (self.signs, self.alphas, self.betas):
            for k in sorted(group):
                yield group[k]
        yield self.lower
        yield self.depth

    def take(self, idx: Tensor) -> Domains:
        return self.map(lambda t: t[idx])


class Pool:
    """Open subdomains; the ones with the lowest bound are bounded first (best-first: the
    likeliest to hold a counterexample, and the ones that decide the proof).

    One buffer with spare capacity: a push writes at the end (amortised O(pushed)), a pop
    fills its holes with the last entries (O(popped)), so neither copies the whole pool.
    """

    def __init__(self) -> None:
        self._buf: Domains | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def push(self, domains: Domains) -> None:
        m = len(domains)
        if m == 0:
            return
        if self._buf is None or self._n + m > len(self._buf):
            capacity = max(2 * (self._n + m), 64)
            grown = domains.map(lambda t: t.new_empty((capacity, *t.shape[1:])))
            if self._buf is not None:
                for dst, src in zip(grown.tensors(), self._buf.tensors(), strict=True):
                    dst[:self._n] = src[:self._n]
            self._buf = grown
        for dst, src in zip(self._buf.tensors(), domains.tensors(), strict=True):
            dst[self._n:self._n + m] = src
        self._n += m

    def pop(self, count: int) -> Domains:
        assert self._buf is not None and self._n > 0
        n = self._n
        score = self._buf.lower[:n].max(1).values
        count = min(count, n)
        idx = torch.topk(-score, count).indices  # lowest bound first
        out = self._buf.take(idx)
        rest = n - count
        popped = torch.zeros(n, dtype=torch.bool, device=idx.device)
        popped[idx] = True
        holes = idx[idx < rest]
        movers = (~popped[rest:]).nonzero().squeeze(1) + rest
        if holes.numel():
            for t in self._buf.tensors():
                t[holes] = t[movers]
        self._n = rest
        return out

    def regions(self) -> list[int]:
        if self._buf is None:
            return []
        return sorted(set(self._buf.region[:self._n].tolist()))
