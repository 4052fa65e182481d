"""Class counts of a base classifier under Gaussian noise, drawn in seeded, batched blocks.

Noise is drawn on the device the base classifier runs on (the trusted torch module's; the CPU
for onnxruntime), from one generator per (sample, stream), in blocks of ``BLOCK`` rows that
are grouped into forward passes of about ``batch`` rows. The blocks, and so the counts, do
not depend on the batch size or on which other samples are certified: only on the seed, the
sample's index and the device type (CPU and CUDA generators give different streams).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verifiers.interrupt import checkpoint
from verifiers.model import OnnxRunner

BLOCK = 64  # noise rows per draw; a forward pass takes whole blocks
SELECTION, ESTIMATION = 0, 1  # the two streams of one sample (N0 and N draws)

# A base classifier: noisy inputs (rows on its device) -> predicted labels (int64 numpy).
Classify = Callable[[torch.Tensor], np.ndarray]


@dataclass(frozen=True)
class BaseClassifier:
    """The classifier smoothed: how it runs, on which device, and what it is called."""

    classify: Classify
    device: torch.device
    engine: str           # "torch" (the trusted conversion) or "onnxruntime"
    num_classes: int


def torch_base(module: torch.nn.Module, device: torch.device, num_classes: int,
               batch: int) -> BaseClassifier:
    def classify(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            labels = [module(chunk).argmax(dim=1) for chunk in torch.split(x, batch)]
        return torch.cat(labels).cpu().numpy()

    return BaseClassifier(classify, device, "torch", num_classes)


def onnx_base(runner: OnnxRunner, num_classes: int, batch: int) -> BaseClassifier:
    def classify(x: torch.Tensor) -> np.ndarray:
        return runner.run(x.numpy(), batch_size=batch).argmax(axis=1)

    return BaseClassifier(classify, torch.device("cpu"), "onnxruntime", num_classes)


def sample_seed(base_seed: int, index: int, stream: int) -> int:
    """The seed of one sample's noise stream: independent of the other samples certified."""
    return (base_seed * 1_000_003 + index * 2 + stream) % (2**63 - 1)


def noise_counts(base: BaseClassifier, x: torch.Tensor, num: int, sigma: float, seed: int,
                 batch: int) -> np.ndarray:
    """How often each class wins among ``num`` copies of ``x`` (one sample, no batch dim,
    on ``base.device``) with i.i.d. N(0, sigma^2) noise added to every input value."""
    generator = torch.Generator(device=base.device).manual_seed(seed)
    counts = np.zeros(base.num_classes, dtype=np.int64)
    pending: list[torch.Tensor] = []
    rows = 0
    for start in range(0, num, BLOCK):
        checkpoint()
        k = min(BLOCK, num - start)
        pending.append(torch.randn((k, *x.shape), generator=generator, device=base.device,
                                   dtype=x.dtype))
        rows += k
        if rows >= batch or start + k >= num:
            noisy = x.unsqueeze(0) + sigma * torch.cat(pending)
            labels = base.classify(noisy)
            counts += np.bincount(labels, minlength=base.num_classes)[:base.num_classes]
            pending, rows = [], 0
    return counts
