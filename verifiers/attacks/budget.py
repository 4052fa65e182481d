"""Attack budgets: typed, named presets, parsed from a standard's ``budget`` and ``attacks``.

Pure data (no torch), so a standard can be parsed and validated without running anything.
A standard picks a preset (quick / standard / thorough) and may override any attack's
budget; ``attacks`` selects which attacks run (default: the whole battery)::

    budget:
      preset: standard                       # quick | standard | thorough
      apgd-t: {iterations: 50, targets: 9}   # per-attack overrides on top of the preset
      square: {queries: 5000}
      sanity: {points: 200}
    attacks: [apgd-ce, apgd-t, fab-t, square, spatial, corruptions]   # or autoattack-standard

The legacy ``budget: {pgd: {steps, restarts}}`` still parses; PGD then runs first in the
cascade. The standard preset matched pyautoattack's standard AutoAttack on every Linf and L2
case of bench/attacks.py at a fifth to a tenth of its time (see the benchmark's output).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from verifiers.errors import StandardError

ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "spatial", "corruptions",
           "autoattack-standard")
# Gradient attacks first (cheap, strong), then the black-box witness, then the non-Lp sweeps.
DEFAULT_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square", "spatial", "corruptions")
GRADIENT_ATTACKS = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t")


@dataclass(frozen=True)
class PgdBudget:
    steps: int = 20
    restarts: int = 1


@dataclass(frozen=True)
class IterBudget:
    iterations: int
    restarts: int = 1


@dataclass(frozen=True)
class TargetedBudget:
    iterations: int
    targets: int             # attack towards the top-k classes other than the label
    restarts: int = 1


@dataclass(frozen=True)
class QueryBudget:
    queries: int             # model queries per point (Square)
    p_init: float = 0.8


@dataclass(frozen=True)
class SpatialBudget:
    max_rotation: float = 30.0   # degrees, Engstrom et al. 2019
    rotations: int = 7           # grid points over [-max, max]
    max_translation: int = 3     # pixels
    translation_step: int = 1


@dataclass(frozen=True)
class CorruptionBudget:
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class SanityBudget:
    points: int = 100            # subsample the gradient-masking checks run on
    stronger_factor: int = 2     # (b): iterations x factor (APGD-CE also +1 restart)
    noise_points: int = 2        # differences this small (or noise_fraction) are noise
    noise_fraction: float = 0.01


@dataclass(frozen=True)
class Budget:
    preset: str
    pgd: PgdBudget
    apgd_ce: IterBudget
    apgd_dlr: IterBudget
    apgd_t: TargetedBudget
    fab_t: TargetedBudget
    square: QueryBudget
    spatial: SpatialBudget
    corruptions: CorruptionBudget
    sanity: SanityBudget
    eot: int = 10               # gradient samples per step when the graph has random ops

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value if isinstance(value, (str, int)) else {
                g.name: getattr(value, g.name) for g in fields(value)}
        return out


PRESETS: dict[str, Budget] = {
    "quick": Budget(
        preset="quick", pgd=PgdBudget(), apgd_ce=IterBudget(25), apgd_dlr=IterBudget(25),
        apgd_t=TargetedBudget(25, targets=3), fab_t=TargetedBudget(20, targets=2),
        square=QueryBudget(300), spatial=SpatialBudget(rotations=5, translation_step=3),
        corruptions=CorruptionBudget((1, 3, 5)), sanity=SanityBudget(points=50)),
    "standard": Budget(
        preset="standard", pgd=PgdBudget(), apgd_ce=IterBudget(50), apgd_dlr=IterBudget(50),
        apgd_t=TargetedBudget(25, targets=9), fab_t=TargetedBudget(30, targets=3),
        square=QueryBudget(1000), spatial=SpatialBudget(), corruptions=CorruptionBudget(),
        sanity=SanityBudget()),
    "thorough": Budget(
        preset="thorough", pgd=PgdBudget(steps=100, restarts=2),
        apgd_ce=IterBudget(100, restarts=2), apgd_dlr=IterBudget(100),
        apgd_t=TargetedBudget(100, targets=9), fab_t=TargetedBudget(100, targets=9),
        square=QueryBudget(5000), spatial=SpatialBudget(rotations=13),
        corruptions=CorruptionBudget(), sanity=SanityBudget(points=200)),
}

# YAML key -> Budget field (hyphenated attack names are accepted as written in `attacks`).
_KEYS = {"pgd": "pgd", "apgd-ce": "apgd_ce", "apgd_ce": "apgd_ce", "apgd-dlr": "apgd_dlr",
         "apgd_dlr": "apgd_dlr", "apgd-t": "apgd_t", "apgd_t": "apgd_t", "fab-t": "fab_t",
         "fab_t": "fab_t", "square": "square", "spatial": "spatial",
         "corruptions": "corruptions", "sanity": "sanity"}


_ZERO_OK = {"max_translation", "noise_points"}


def parse_budget(raw: Any) -> Budget:
    """``budget:`` -> Budget: the preset, then each named override on top of it."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise StandardError("budget must be a mapping")
    preset = str(raw.get("preset", "standard"))
    if preset not in PRESETS:
        raise StandardError(f"budget.preset {preset!r} is unknown; use one of {list(PRESETS)}")
    budget = PRESETS[preset]
    unknown = set(raw) - set(_KEYS) - {"preset", "eot"}
    if unknown:
        raise StandardError(f"budget has unknown field(s): {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _KEYS:
            name = _KEYS[key]
            changes[name] = _override(getattr(budget, name), value, f"budget.{key}")
    if "eot" in raw:
        changes["eot"] = _positive_int(raw["eot"], "budget.eot")
    return replace(budget, **changes)


def parse_attacks(raw: Any, budget_raw: Any) -> tuple[str, ...]:
    """``attacks:`` -> names in run order; default: the battery (plus PGD if it is budgeted)."""
    if raw is None:
        legacy = isinstance(budget_raw, Mapping) and "pgd" in budget_raw
        return (("pgd",) if legacy else ()) + DEFAULT_ATTACKS
    if not isinstance(raw, list) or not raw:
        raise StandardError("attacks must be a non-empty list of attack names")
    names = tuple(str(a).lower() for a in raw)
    bad = [a for a in names if a not in ATTACKS]
    if bad:
        raise StandardError(f"attacks: unknown attack(s) {bad}; known: {list(ATTACKS)}")
    if len(set(names)) != len(names):
        raise StandardError("attacks: an attack is listed twice")
    # Cascade order is fixed (cheap white-box first), whatever order the list was written in.
    return tuple(a for a in ("pgd",) + ATTACKS[1:] if a in names)


def _override(base: Any, value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise StandardError(f"{where} must be a mapping")
    known = {f.name: f for f in fields(base)}
    unknown = set(value) - set(known)
    if unknown:
        raise StandardError(f"{where} has unknown field(s): {', '.join(sorted(unknown))}; "
                            f"known: {sorted(known)}")
    changes: dict[str, Any] = {}
    for key, v in value.items():
        current = getattr(base, key)
        if isinstance(current, tuple):
            if not isinstance(v, list) or not all(isinstance(i, int) for i in v):
                raise StandardError(f"{where}.{key} must be a list of integers")
            changes[key] = tuple(v)
        elif isinstance(current, float):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise StandardError(f"{where}.{key} must be a non-negative number")
            changes[key] = float(v)
        else:
            changes[key] = _positive_int(v, f"{where}.{key}", low=0 if key in _ZERO_OK else 1)
    result = replace(base, **changes)
    if isinstance(result, CorruptionBudget) and not all(1 <= s <= 5 for s in result.severities):
        raise StandardError(f"{where}.severities must lie in 1..5")
    return result


def _positive_int(v: Any, where: str, low: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise StandardError(f"{where} must be an integer >= {low}")
    return v
