"""Max-sensitivity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of explanations"):
the largest relative change of an attribution map under small input perturbations,

    SENS_max(x) = max_{|d|_inf <= r} ||A(x + d) - A(x)||_F / ||A(x)||_F,

estimated from seeded uniform draws in the L-infinity ball, clipped to the input domain.
Captum's ``captum.metrics.sensitivity_max`` does the bookkeeping (repeating inputs and
targets, normalising, taking the max); the draws come from our seeded generator, not from
torch's global one as Captum's default perturbation does.
"""

from __future__ import annotations

import numpy as np
import torch

from verifiers.data import InputDomain
from verifiers.explain.attributions import Attributor
from verifiers.interrupt import checkpoint


def max_sensitivity(attributor: Attributor, x: np.ndarray, target: np.ndarray, radius: float,
                    draws: int, domain: InputDomain, generator: torch.Generator) -> np.ndarray:
    """SENS_max per sample (numpy, one value per row of ``x``)."""
    from captum.metrics import sensitivity_max

    def perturb(inputs: torch.Tensor, r: float) -> torch.Tensor:
        noise = torch.rand(inputs.shape, generator=generator) * (2 * r) - r
        return (inputs + noise).clamp(domain.low, domain.high)

    def explain(inputs: torch.Tensor | tuple[torch.Tensor, ...],
                target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Captum hands the unperturbed inputs as a tuple and iterates over what comes back.
        (tensor,) = inputs if isinstance(inputs, tuple) else (inputs,)
        return (attributor.fn(tensor, target).detach().cpu().float(),)

    out = []
    step = max(1, attributor.batch_size // 4)
    for start in range(0, len(x), step):
        checkpoint()
        xb = torch.from_numpy(np.ascontiguousarray(x[start:start + step]))
        tb = torch.from_numpy(np.asarray(target[start:start + step], dtype=np.int64))
        sens = sensitivity_max(explain, xb, perturb_func=perturb, perturb_radius=radius,
                               n_perturb_samples=draws, target=tb)
        out.append(sens.detach().cpu().numpy())
    return np.concatenate(out).astype(np.float64)
