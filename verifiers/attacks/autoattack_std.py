"""``autoattack-standard``: the pyautoattack 0.2.0 package run as-is, for RobustBench numbers.

Standard version (APGD-CE, APGD-T, FAB-T, Square with their published budgets), seeded.
AutoAttack assumes inputs in [0, 1]; another input range is mapped onto it affinely, which
scales every Lp norm by the same factor, so the radius is scaled with it. Its examples are
returned in the original range for the onnxruntime re-check like every other attack's.
AutoAttack seeds torch's global generator itself; that is confined with ``fork_rng``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from verifiers.attacks.ball import Ball, project
from verifiers.data import InputDomain

log = logging.getLogger(__name__)
_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class _UnitBox(nn.Module):
    """The model seen on [0, 1]: u -> model(low + width * u), counting passes per sample."""

    def __init__(self, inner: nn.Module, domain: InputDomain) -> None:
        super().__init__()
        self.inner = inner
        self.low, self.width = domain.low, domain.high - domain.low
        self.forward_passes = 0
        self.backward_passes = 0

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        self.forward_passes += len(u)
        if torch.is_grad_enabled() and u.requires_grad:
            self.backward_passes += len(u)  # AutoAttack differentiates every graph it builds
        return self.inner(self.low + self.width * u)


@dataclass
class AutoAttackOutcome:
    x_adv: np.ndarray
    fooled: np.ndarray          # as judged by the torch model
    forward_passes: int
    backward_passes: int
    seconds: float


def autoattack_standard(module: nn.Module, x: np.ndarray, y: np.ndarray, ball: Ball,
                        domain: InputDomain, seed: int, device: torch.device,
                        batch_size: int) -> AutoAttackOutcome:
    from pyautoattack import AutoAttack  # optional dependency, imported only when selected

    wrapped = _UnitBox(module, domain).eval()
    width = domain.high - domain.low
    u = torch.from_numpy((x - domain.low) / width).float().to(device)
    yt = torch.from_numpy(y).to(device)
    t0 = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        attack = AutoAttack(wrapped, norm=_NORMS[ball.norm], eps=ball.eps / width,
                            version="standard", seed=seed, device=device)
        u_adv, _ = attack.run_standard_evaluation(u, yt, batch_size=batch_size)
        with torch.no_grad():
            # Back to the original range, and into the ball there (rounding of the rescale).
            xt = torch.from_numpy(x).to(device)
            back = project(xt, domain.low + width * u_adv.detach(), ball, domain)
            fooled = (module(back).argmax(1) != yt).cpu().numpy()
    seconds = time.perf_counter() - t0
    x_adv = back.cpu().numpy().astype(np.float32)
    # Undo the float round trip on untouched rows so they compare equal to the input.
    same = ~fooled
    x_adv[same] = x[same]
    return AutoAttackOutcome(x_adv, fooled, wrapped.forward_passes, wrapped.backward_passes,
                             seconds)
