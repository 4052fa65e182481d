"""What an Lp attack attacks: a differentiable module (or None) and the original model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from verifiers.model.runtime import OnnxRunner


@dataclass
class Target:
    module: nn.Module | None
    runner: OnnxRunner
    output_kind: str
    device: torch.device
    eot: int = 1
    # The model as uploaded, for the re-check (``runner`` may be intake's batch-normalised
    # copy, verified equal on probes but not the original bytes).
    reference: OnnxRunner | None = None
    # onnxruntime on the graph with its softmax head cut: the margins a saturated softmax
    # hides from a score-based attack (Square), where intake could cut the head.
    logits: OnnxRunner | None = None

    @property
    def checker(self) -> OnnxRunner:
        return self.reference or self.runner

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Logit-like scores from onnxruntime: the cut graph's logits when there is one, else
        the log of the probabilities (same margins until float32 saturates)."""
        if self.logits is not None:
            return self.logits.run(x, batch_size=1024)
        out = self.runner.run(x, batch_size=1024)
        return np.log(np.clip(out, 1e-30, None)) if self.output_kind == "probabilities" else out
