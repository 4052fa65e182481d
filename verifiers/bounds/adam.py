"""Adam (Kingma & Ba 2015) with torch.optim's defaults, for alpha-CROWN and beta-CROWN.

Written here because constructing ``torch.optim.Adam`` imports torch._dynamo on first use
(3.3-3.9 s on a 2-core CPU), which would land inside a verification call's time budget.
Matches torch.optim.Adam to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class Adam:
    """``rates``: one learning rate for every parameter, or one per parameter."""

    def __init__(self, params: list[Tensor], rates: float | Sequence[float],
                 b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
        self.params, self.b1, self.b2, self.eps = params, b1, b2, eps
        self.rates = [float(rates)] * len(params) if isinstance(rates, (int, float)) \
            else list(rates)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor | None] | None = None) -> None:
        """One step on ``grads`` (default: each parameter's ``.grad``)."""
        if grads is None:
            grads = [p.grad for p in self.params]
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, g, m, v, lr in zip(self.params, grads, self.m, self.v, self.rates, strict=True):
            if g is None:
                continue
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-lr / c1)
