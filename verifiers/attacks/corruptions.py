"""Common corruptions by severity (after Hendrycks & Dietterich 2019), on onnxruntime.

Four corruptions with the CIFAR-10-C severity constants, scaled to the input range:
Gaussian noise (seeded), Gaussian blur, contrast and brightness. Brightness is additive in
pixel space rather than in HSV (the model sees the pixels; HSV needs 3 channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from verifiers.data import InputDomain
from verifiers.diskarrays import block_rows

Predict = Callable[[np.ndarray], np.ndarray]

SEVERITY = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),   # noise std / range
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),         # blur std in pixels
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),             # factor towards the mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),           # shift / range
}


def corrupt(x: torch.Tensor, name: str, severity: int, domain: InputDomain,
            generator: torch.Generator) -> torch.Tensor:
    c = SEVERITY[name][severity - 1]
    width = domain.high - domain.low
    if name == "gaussian_noise":
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        out = x + c * width * noise
    elif name == "gaussian_blur":
        out = _blur(x - domain.low, c) + domain.low
    elif name == "contrast":
        dims = tuple(range(2, x.dim())) if x.dim() > 2 else (1,)
        mean = x.mean(dim=dims, keepdim=True)
        out = (x - mean) * c + mean
    elif name == "brightness":
        out = x + c * width
    else:
        raise ValueError(f"unknown corruption {name!r}")
    return out.clamp(domain.low, domain.high)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    pad = (radius, radius, radius, radius)
    mode = "reflect" if min(x.shape[2:]) > radius else "replicate"
    out = F.pad(x, pad, mode=mode)
    out = F.conv2d(out, k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def names_for(x: np.ndarray) -> tuple[str, ...]:
    """Blur needs spatial dimensions; the rest apply to any input."""
    return tuple(n for n in SEVERITY if n != "gaussian_blur" or x.ndim == 4)


def corruption_sweep(predict: Predict, x: np.ndarray, y: np.ndarray,
                     severities: tuple[int, ...], domain: InputDomain, device: torch.device,
                     generator: torch.Generator) -> tuple[dict[str, float], int]:
    """``{"<name>.<severity>": accuracy}`` over all samples, and the forward passes spent.

    A set larger than one block (verifiers.diskarrays; possibly memory-mapped) is corrupted
    block by block, never whole: the same corruptions, the noise drawn in block order."""
    step = block_rows(x)
    blocks = [(0, len(x))] if len(x) <= step else \
        [(lo, min(lo + step, len(x))) for lo in range(0, len(x), step)]
    # Copies (at most one block each): ``x`` may be a read-only memory map.
    whole = torch.from_numpy(np.array(x)).to(device) if len(blocks) == 1 else None
    out: dict[str, float] = {}
    passes = 0
    for name in names_for(x):
        for s in severities:
            correct = 0
            for lo, hi in blocks:
                xt = whole if whole is not None else \
                    torch.from_numpy(np.array(x[lo:hi])).to(device)
                bad = corrupt(xt, name, s, domain, generator).cpu().numpy()
                correct += int((predict(bad) == y[lo:hi]).sum())
                passes += len(bad)
            out[f"{name}.{s}"] = correct / len(x)
    return out, passes
