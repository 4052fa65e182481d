"""Subdomains of a branch-and-bound search, stored column-wise (one tensor per field).

A subdomain is a region of the property (its index), an input box, the intermediate bounds
that hold on it (split neurons clamped at 0), the split history (signs per ReLU input), the
warm-start slopes/multipliers of its last bound, and its best lower bound per spec row.
Batches are taken and put back as whole tensors, so a batch of subdomains is bounded in one
pass of the engine.
"""

from __future__ import annotations

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

    def take(self, idx: Tensor) -> Domains:
        return Domains(self.region[idx],
                       {k: Interval(v.lower[idx], v.upper[idx]) for k, v in self.bounds.items()},
                       {k: v[idx] for k, v in self.signs.items()},
                       {k: v[idx] for k, v in self.alphas.items()},
                       {k: v[idx] for k, v in self.betas.items()},
                       self.lower[idx], self.depth[idx])

    @staticmethod
    def cat(parts: list[Domains]) -> Domains:
        first = parts[0]
        if len(parts) == 1:
            return first

        def join(key: str) -> dict[str, Tensor]:
            return {k: torch.cat([getattr(p, key)[k] for p in parts]) for k in getattr(first, key)}

        bounds = {k: Interval(torch.cat([p.bounds[k].lower for p in parts]),
                              torch.cat([p.bounds[k].upper for p in parts]))
                  for k in first.bounds}
        return Domains(torch.cat([p.region for p in parts]), bounds, join("signs"),
                       join("alphas"), join("betas"), torch.cat([p.lower for p in parts]),
                       torch.cat([p.depth for p in parts]))


class Pool:
    """Open subdomains; the ones with the lowest bound are bounded first (best-first: the
    likeliest to hold a counterexample, and the ones that decide the proof)."""

    def __init__(self) -> None:
        self._store: Domains | None = None
        self._pending: list[Domains] = []

    def __len__(self) -> int:
        return (len(self._store) if self._store is not None else 0) + sum(
            len(p) for p in self._pending)

    def push(self, domains: Domains) -> None:
        if len(domains):
            self._pending.append(domains)

    def pop(self, count: int) -> Domains:
        self._flush()
        assert self._store is not None
        score = self._store.score()
        count = min(count, len(score))
        idx = torch.topk(-score, count).indices
        keep = torch.ones(len(score), dtype=torch.bool, device=score.device)
        keep[idx] = False
        out = self._store.take(idx)
        self._store = self._store.take(keep.nonzero().squeeze(1))
        return out

    def regions(self) -> list[int]:
        self._flush()
        return [] if self._store is None else sorted(set(self._store.region.tolist()))

    def _flush(self) -> None:
        parts = ([self._store] if self._store is not None else []) + self._pending
        self._pending = []
        self._store = Domains.cat(parts) if parts else None
