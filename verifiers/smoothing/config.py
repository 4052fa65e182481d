"""The ``smoothing:`` section of a standard: noise level, sample counts, radii, a preset.

Pure data (no torch), so a standard is parsed and validated without running anything::

    smoothing:
      preset: standard          # standard (Cohen et al.'s published counts) | cpu (cheap tier)
      sigma: 0.25               # Gaussian noise, standard deviation in the input domain's units
      n0: 100                   # selection samples (which class to certify)
      n: 100000                 # estimation samples (how sure)
      alpha: 0.001              # each certificate is wrong with probability at most alpha
      radii: ["0.25", "0.5"]    # L2 radii criteria may ask about (smoothing.certified_accuracy@R)
      samples: 500              # evaluation samples certified (evenly spaced); 0: all of them
      batch: 1000               # noisy copies per forward pass (memory, not the figures)

A preset sets every field; fields written beside it override it. ``cpu`` draws a hundredth of
the noise samples: its Clopper-Pearson bounds are wider, its radii smaller and capped lower
(``max_radius``), and the scorecard says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from verifiers.errors import StandardError
from verifiers.labels import labelled_number


@dataclass(frozen=True)
class Radius:
    """An L2 radius and the label it was written with (as criteria must write it)."""

    value: float
    label: str


@dataclass(frozen=True)
class SmoothingConfig:
    preset: str
    sigma: float
    n0: int
    n: int
    alpha: float
    radii: tuple[Radius, ...]
    samples: int          # 0: every evaluation sample
    batch: int

    @property
    def cheap(self) -> bool:
        return self.preset == "cpu"

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["radii"] = [r.label for r in self.radii]
        return out


DEFAULT_RADII = (Radius(0.25, "0.25"), Radius(0.5, "0.5"))
PRESETS: dict[str, SmoothingConfig] = {
    # Cohen, Rosenfeld & Kolter 2019, section 4: N0 = 100, N = 100,000, alpha = 0.001,
    # 500 test images (every 20th of CIFAR-10's 10,000).
    "standard": SmoothingConfig("standard", sigma=0.25, n0=100, n=100_000, alpha=0.001,
                                radii=DEFAULT_RADII, samples=500, batch=1000),
    # A CPU tier: 1,000 estimation samples cap the radius at sigma * 2.46 (alpha 0.001).
    "cpu": SmoothingConfig("cpu", sigma=0.25, n0=64, n=1000, alpha=0.001,
                           radii=DEFAULT_RADII, samples=100, batch=500),
}
DEFAULT_PRESET = "standard"
FIELDS = ("preset", "sigma", "n0", "n", "alpha", "radii", "samples", "batch")


def parse_smoothing(raw: Any) -> SmoothingConfig:
    """``smoothing:`` -> SmoothingConfig (the default preset for an empty section)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise StandardError("smoothing must be a mapping (preset, sigma, n0, n, alpha, radii, "
                            "samples, batch)")
    unknown = [k for k in raw if k not in FIELDS]
    if unknown:
        raise StandardError(f"smoothing has unknown field(s): {', '.join(map(str, unknown))} "
                            f"(known: {', '.join(FIELDS)})")
    preset = raw.get("preset", DEFAULT_PRESET)
    if preset not in PRESETS:
        raise StandardError(f"smoothing.preset {preset!r} is unknown; use one of "
                            f"{list(PRESETS)}")
    changes: dict[str, Any] = {}
    if "sigma" in raw:
        changes["sigma"] = _number(raw["sigma"], "smoothing.sigma", positive=True)
    if "alpha" in raw:
        alpha = _number(raw["alpha"], "smoothing.alpha", positive=True)
        if alpha > 0.5:
            raise StandardError(f"smoothing.alpha must lie in (0, 0.5] (a failure "
                                f"probability such as 0.001), got {raw['alpha']!r}")
        changes["alpha"] = alpha
    for key, low in (("n0", 1), ("n", 1), ("samples", 0), ("batch", 1)):
        if key in raw:
            changes[key] = _integer(raw[key], f"smoothing.{key}", low)
    if "radii" in raw:
        changes["radii"] = _radii(raw["radii"])
    return replace(PRESETS[preset], **changes)


def parse_radius(raw: Any, where: str) -> Radius:
    """A radius >= 0 written as a number or a string ("0.5", "1/4"); the label is kept."""
    try:
        value, label = labelled_number(raw)
    except ValueError as exc:
        raise StandardError(f"{where} = {raw!r} is not a number") from exc
    if value < 0:
        raise StandardError(f"{where} must be >= 0, got {raw!r}")
    return Radius(value, label)


def _radii(raw: Any) -> tuple[Radius, ...]:
    if not isinstance(raw, list) or not raw:
        raise StandardError(f"smoothing.radii must be a non-empty list of L2 radii, got "
                            f"{raw!r}")
    radii = tuple(parse_radius(r, f"smoothing.radii[{i}]") for i, r in enumerate(raw))
    labels = [r.label for r in radii]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise StandardError(f"smoothing.radii[{i}] lists radius {label} twice")
    return radii


def _number(raw: Any, where: str, positive: bool = False) -> float:
    ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw)
    if not ok or (positive and raw <= 0):
        raise StandardError(f"{where} must be a finite number{' > 0' if positive else ''}, "
                            f"got {raw!r}")
    return float(raw)


def _integer(raw: Any, where: str, low: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise StandardError(f"{where} must be an integer >= {low}, got {raw!r}")
    return raw
