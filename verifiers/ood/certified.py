"""Hook for a CERTIFIED upper bound on confidence over each adversarial-OOD ball.

:func:`engine_bound` builds one from the bound engine (CROWN) when the standard has a
criterion on the certified metric; otherwise the metric is reported as not obtained (the
bound costs seconds per ball batch, and over a large ball it is often close to 1).
Whatever bound is plugged in must dominate every confidence an attack reaches in the same
ball: :func:`check_against_attack` enforces that, as the per-sample soundness rule does for
certified vs attacked accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from verifiers.bounds.confidence import confidence_upper_bound
from verifiers.data import InputDomain
from verifiers.errors import IntakeError, SoundnessError

if TYPE_CHECKING:
    from verifiers.checks.context import RunContext

CERTIFIED_METRIC = "ood.adversarial.certified_max_confidence"
NOT_WIRED = ("no certified confidence bound: not requested by the standard (add a criterion "
             f"on {CERTIFIED_METRIC})")


class ConfidenceBound(Protocol):
    def __call__(self, centres: np.ndarray, eps: float, domain: InputDomain) -> np.ndarray:
        """Per centre, an upper bound on max_k softmax_k over ball(centre, eps) ∩ domain.

        May return NaN for a ball it could not bound (unsupported op, timeout).
        """
        ...


def engine_bound(ctx: RunContext) -> ConfidenceBound | None:
    """The bound engine as a ConfidenceBound, when the standard asks for the certified metric."""
    if not any(c.metric == CERTIFIED_METRIC for c in ctx.standard.criteria):
        return None
    if ctx.model.info.logits_from == "log(output)":
        return _unbounded  # no logits to bound: softmax of the output is not its confidence
    try:
        graph = ctx.bound_graph()
    except IntakeError:  # includes UnsupportedOpError
        return _unbounded
    if ctx.device != graph.device:
        graph.to(ctx.device, graph.dtype)

    def bound(centres: np.ndarray, eps: float, domain: InputDomain) -> np.ndarray:
        return confidence_upper_bound(graph, centres, eps, domain)

    return bound


def _unbounded(centres: np.ndarray, _eps: float, _domain: InputDomain) -> np.ndarray:
    return np.full(len(centres), np.nan)


def check_against_attack(bound: np.ndarray, reached: np.ndarray, tolerance: float = 1e-5) -> None:
    """A reached confidence above its certified bound is a tool bug: fail loudly."""
    broken = np.flatnonzero(np.isfinite(bound) & (reached > bound + tolerance))
    if len(broken):
        i = int(broken[0])
        raise SoundnessError(
            f"adversarial OOD point {i} reached confidence {reached[i]:.6g} above its certified "
            f"upper bound {bound[i]:.6g} ({len(broken)} ball(s) affected)")
