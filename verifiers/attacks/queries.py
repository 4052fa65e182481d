"""Where a score-based attack (Square) sends its queries: onnxruntime, or the torch module.

onnxruntime here is the CPU build. On a CUDA worker, Square's up to thousands of steps would
each run a forward pass of the model on the CPU while the GPU idles, and dominate the
battery's wall time on a real-size network. There the queries go through the torch module on
the device instead, when it can answer them faithfully:

- the module is the fidelity-verified conversion (the fidelity check gates white-box use on
  its agreement with onnxruntime), so its scores are onnxruntime's within that tolerance;
- its forward pass is deterministic (``eot == 1``): a random graph's scores would be one
  draw, not the model's;
- it gives the same kind of scores as :meth:`Target.scores`: the cut logits where the target
  has a cut-logits runner, else what the model outputs (the log of probabilities, clipped the
  same way).

Nothing is trusted on the module's word: every example Square claims is re-checked on
onnxruntime afterwards (verifiers.attacks.recheck), as for the white-box attacks. Everywhere
else (a CPU worker, no module, a random graph) the queries stay on onnxruntime, unchanged.
"""

from __future__ import annotations

import numpy as np

from verifiers.attacks.square import Scores
from verifiers.attacks.target import Target
from verifiers.model.convert import LogitsView, torch_scores

# Rows per forward pass, as Target.scores gives onnxruntime: Square's batch is the cascade's,
# which the gradient attacks already ran forward and backward on the same device.
BATCH = 1024


def module_can_answer(target: Target) -> bool:
    """Whether the module gives the scores :meth:`Target.scores` would, up to fidelity."""
    module = target.module
    if not isinstance(module, LogitsView) or target.eot != 1:
        return False
    return target.logits is None or module.head_cut  # cut logits need the cut module


def score_fn(target: Target, on_module: bool | None = None) -> Scores:
    """The scores Square queries: the module's on a CUDA device, else onnxruntime's.

    ``on_module`` overrides the device's choice (tests force the module path on a CPU); the
    module is used only where :func:`module_can_answer`, whatever the override.
    """
    wanted = target.device.type == "cuda" if on_module is None else on_module
    if not (wanted and module_can_answer(target)):
        return target.scores
    module, device = target.module, target.device

    def scores(x: np.ndarray) -> np.ndarray:
        if target.logits is not None:
            return torch_scores(module, x, device, BATCH, space="logits")
        out = torch_scores(module, x, device, BATCH, space="scores")
        # Exactly Target.scores' transform of onnxruntime's output.
        return np.log(np.clip(out, 1e-30, None)) if target.output_kind == "probabilities" \
            else out

    return scores
