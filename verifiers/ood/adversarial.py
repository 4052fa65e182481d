"""Adversarial OOD: fooling images (Nguyen et al. 2015) inside an L-inf ball around noise.

Start from uniform noise, then ascend the top-class log-probability with signed gradients
on the torch module (white-box), projected onto the ball and the valid input range. The
confidence reported is the one onnxruntime gives the ORIGINAL model on the final points, after
they are clipped once more in numpy so they provably lie in the ball and the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint
from verifiers.ood.config import AdversarialOodConfig


@dataclass(frozen=True)
class FoolingResult:
    centres: np.ndarray        # the noise the balls are centred on
    x_adv: np.ndarray          # the most confident point found per ball, inside it
    eps: float                 # absolute L-inf radius
    torch_confidence: np.ndarray  # top-class probability per point, torch module
    forward_passes: int
    backward_passes: int


def _top_log_prob(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(module(x).float(), dim=1).max(dim=1).values


def _ascend(module: nn.Module, x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
            step: float, steps: int, keep_x: torch.Tensor,
            keep_obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed-gradient ascent of the top-class log-probability, keeping the best iterate."""
    for k in range(steps + 1):
        checkpoint()
        x.requires_grad_(True)
        obj = _top_log_prob(module, x)
        with torch.no_grad():
            better = obj.detach() > keep_obj
            keep_x[better] = x.detach()[better]
            keep_obj = torch.where(better, obj.detach(), keep_obj)
        if k == steps:
            break
        (grad,) = torch.autograd.grad(obj.sum(), x)
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x + step * grad.sign(), lo), hi)
    return keep_x, keep_obj


def fooling_search(module: nn.Module, domain: InputDomain, cfg: AdversarialOodConfig,
                   generator: torch.Generator, device: torch.device,
                   sample_shape: tuple[int, ...], batch_size: int = 256) -> FoolingResult:
    """Most confident point found in each ball; batches stream so memory stays bounded."""
    eps = cfg.eps_fraction * (domain.high - domain.low)
    span = domain.high - domain.low
    # Every random draw up front, on the CPU generator: results do not depend on batching.
    centres = domain.low + span * torch.rand((cfg.samples, *sample_shape), generator=generator)
    starts = torch.rand((cfg.restarts - 1, cfg.samples, *sample_shape), generator=generator)
    best_x, best_obj = [], []
    for first in range(0, cfg.samples, batch_size):
        c = centres[first:first + batch_size].to(device)
        lo = torch.clamp(c - eps, min=domain.low)
        hi = torch.clamp(c + eps, max=domain.high)
        keep_x = c.clone()
        keep_obj = torch.full((len(c),), -torch.inf, device=device)
        for r in range(cfg.restarts):
            # The first run starts at the centre itself, later ones at random points of the ball.
            x0 = c.clone() if r == 0 else lo + (hi - lo) * starts[r - 1, first:first + len(c)].to(
                device)
            keep_x, keep_obj = _ascend(module, x0, lo, hi, cfg.step(eps), cfg.steps, keep_x,
                                       keep_obj)
        best_x.append(keep_x.detach().cpu())
        best_obj.append(keep_obj.detach().cpu())
    centres_np = centres.numpy().astype(np.float32)
    runs = cfg.samples * cfg.restarts
    return FoolingResult(
        centres=centres_np, x_adv=project(torch.cat(best_x).numpy(), centres_np, eps, domain),
        eps=eps, torch_confidence=torch.cat(best_obj).exp().numpy().astype(np.float64),
        forward_passes=runs * (cfg.steps + 1), backward_passes=runs * cfg.steps)


def project(x: np.ndarray, centres: np.ndarray, eps: float, domain: InputDomain) -> np.ndarray:
    """Clip into ball(centres, eps) and the input range, in float32, as onnxruntime sees it."""
    lo = np.maximum(centres - np.float32(eps), np.float32(domain.low))
    hi = np.minimum(centres + np.float32(eps), np.float32(domain.high))
    return np.clip(x.astype(np.float32), lo, hi)


def inside(x: np.ndarray, centres: np.ndarray, eps: float, domain: InputDomain,
           tolerance: float = 1e-6) -> np.ndarray:
    """Per point: in the ball and in the range (float32 rounding allowed, nothing more)."""
    flat, c = x.reshape(len(x), -1), centres.reshape(len(x), -1)
    return ((np.abs(flat - c).max(axis=1) <= eps + tolerance)
            & (flat.min(axis=1) >= domain.low - tolerance)
            & (flat.max(axis=1) <= domain.high + tolerance))
