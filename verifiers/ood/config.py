"""Budgets of the OOD and calibration checks, as typed frozen dataclasses.

Defaults are what the battery runs with; a standard may later carry its own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from verifiers.errors import StandardError

# Built-in families, in the order they are generated and reported.
FAMILIES: tuple[str, ...] = (
    "uniform_noise", "gaussian_noise", "constant", "blobs", "permuted_pixels",
    "patch_shuffled", "inverted", "far_away",
)


@dataclass(frozen=True)
class AdversarialOodConfig:
    """Fooling-image search (Nguyen et al. 2015) inside an L-inf ball around uniform noise."""

    samples: int = 128
    steps: int = 100
    restarts: int = 1
    # Radius as a fraction of the input range (high - low), so one default fits any range.
    eps_fraction: float = 0.3
    # Step size as a fraction of eps; None gives 2.5 / steps, as for PGD.
    step_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.samples < 1 or self.steps < 1 or self.restarts < 1:
            raise StandardError("adversarial OOD samples, steps and restarts must be >= 1")
        if not 0.0 < self.eps_fraction <= 1.0:
            raise StandardError(f"adversarial OOD eps_fraction must lie in (0, 1], got "
                                f"{self.eps_fraction}")

    def step(self, eps: float) -> float:
        fraction = self.step_fraction if self.step_fraction is not None else 2.5 / self.steps
        return fraction * eps


@dataclass(frozen=True)
class OodConfig:
    samples_per_suite: int = 512
    families: tuple[str, ...] = FAMILIES
    # Hein et al. 2019: alpha * x with alpha large; these inputs leave the valid range.
    far_alpha: float = 100.0
    # Blob smoothing width as a fraction of the smallest spatial side (8x8 -> sigma 1 pixel).
    blob_sigma_fraction: float = 0.125
    # Patch shuffling cuts every spatial axis into this many pieces.
    patch_grid: int = 4
    tpr_level: float = 0.95
    adversarial: AdversarialOodConfig = field(default_factory=AdversarialOodConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown:
            raise StandardError(f"unknown OOD families {unknown}; known: {list(FAMILIES)}")
        if self.samples_per_suite < 2:
            raise StandardError("samples_per_suite must be >= 2")
        if self.far_alpha <= 1.0:
            raise StandardError(f"far_alpha must be > 1, got {self.far_alpha}")
        if self.patch_grid < 2:
            raise StandardError("patch_grid must be >= 2")
        if not 0.0 < self.tpr_level < 1.0:
            raise StandardError(f"tpr_level must lie in (0, 1), got {self.tpr_level}")
        if self.blob_sigma_fraction <= 0:
            raise StandardError("blob_sigma_fraction must be > 0")


@dataclass(frozen=True)
class CalibrationConfig:
    # Guo et al. 2017: 15 equal-width confidence bins.
    bins: int = 15

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise StandardError("calibration bins must be >= 1")
