"""Attribution maps: what each input value contributed to the score of a target class.

Taken from Captum (``captum.attr``): ``IntegratedGradients`` (Sundararajan et al. 2017; the
Gauss-Legendre path rule, batched), ``InputXGradient`` (gradient x input) and ``Occlusion``
(Zeiler & Fergus 2014: sliding patches set to the neutral value, score drop per patch). Captum
is used for the attribution rules themselves, which are easy to get subtly wrong (path
scaling, occlusion overlap counts); everything random and everything judged is ours.

White-box methods run on the trusted torch conversion (the fidelity check's module, logits
out). Without one, occlusion runs on onnxruntime: Captum's Occlusion calls a forward function
that hands numpy to the ONNX runner, so only forward passes of the accepted model are used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from verifiers.interrupt import checkpoint
from verifiers.model import OnnxRunner

# A batch of inputs and target classes -> attributions of the same shape (torch, on CPU).
AttributionFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attributor:
    method: str       # integrated_gradients | gradient_x_input | occlusion
    runtime: str      # where the model ran
    fn: AttributionFn
    batch_size: int = 64

    def __call__(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Attributions for every row of ``x`` (float32 numpy, same shape)."""
        out = []
        for start in range(0, len(x), self.batch_size):
            checkpoint()
            xb = torch.from_numpy(np.ascontiguousarray(x[start:start + self.batch_size]))
            tb = torch.from_numpy(np.asarray(target[start:start + self.batch_size],
                                             dtype=np.int64))
            out.append(self.fn(xb, tb).detach().cpu().float().numpy())
        return np.concatenate(out, axis=0)


# Inputs per integrated-gradients forward/backward, in numbers: all steps of a batch at once
# for small inputs (digits: 64 x 16 x 64), a few images at a time for large ones (an ImageNet
# ResNet-50 took 13.8 GB for 2 samples when every step went in one pass).
_MAX_IG_BATCH_NUMBERS = 2**21


def white_box(module: torch.nn.Module, method: str, baseline: float, steps: int,
              device: torch.device, batch_size: int = 64) -> Attributor:
    """Integrated gradients or gradient x input on a torch module that outputs logits."""
    from captum.attr import InputXGradient, IntegratedGradients  # heavy import, on use

    def fn(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, target = x.to(device), target.to(device)
        with torch.enable_grad():
            if method == "gradient_x_input":
                return InputXGradient(module).attribute(x.requires_grad_(True), target=target)
            per_input = max(1, x[0].numel()) if len(x) else 1
            internal = max(1, min(len(x) * steps, _MAX_IG_BATCH_NUMBERS // per_input))
            return IntegratedGradients(module).attribute(
                x, baselines=torch.full_like(x, baseline), target=target, n_steps=steps,
                method="gausslegendre", internal_batch_size=internal)

    return Attributor(method, "torch (trusted conversion)", fn, batch_size)


def occlusion(runner: OnnxRunner, baseline: float, window: int, sample_shape: tuple[int, ...],
              batch_size: int = 64) -> Attributor:
    """Captum's Occlusion with onnxruntime as the forward function: square patches of side
    ``window`` (stride ``window``) over the last two axes, every channel at once."""
    from captum.attr import Occlusion

    def forward(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(runner.run(t.detach().cpu().numpy(), batch_size=1024))

    shape = patch_shape(sample_shape, window)
    per_eval = max(1, 1024 // batch_size)

    def fn(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return Occlusion(forward).attribute(
            x, sliding_window_shapes=shape, strides=shape, baselines=baseline,
            target=target, perturbations_per_eval=per_eval)

    return Attributor("occlusion", "onnxruntime", fn, batch_size)


def patch_shape(sample_shape: tuple[int, ...], window: int) -> tuple[int, ...]:
    """The occlusion patch: ``window`` along the last (up to two) axes, whole along the rest
    (the channels of an image), clipped to the sample."""
    spatial = min(2, len(sample_shape))
    lead = tuple(sample_shape[:-spatial]) if spatial < len(sample_shape) else ()
    return lead + tuple(min(window, s) for s in sample_shape[len(sample_shape) - spatial:])
