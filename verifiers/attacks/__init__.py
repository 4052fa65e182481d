"""Adversarial attacks; every success is re-checked on onnxruntime (``recheck``).

One module per attack (pgd, apgd, fab, square, spatial, corruptions, autoattack_std), the
threat geometry they share (ball), the typed budgets and presets (budget), the cascade that
runs them over still-robust points (battery) and the gradient-masking scan with its
BPDA/EOT remedies (masking). Attack functions named like their module (``apgd.apgd``,
``square.square``, ``pgd.pgd``) are imported from the module, so the module names stay
importable (``import verifiers.attacks.apgd``); so is ``recheck``: the function is
``verifiers.attacks.recheck.recheck`` (the package exports load lazily, and a lazily exported
name equal to a submodule's would turn into the module once that submodule is imported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from verifiers.lazy import lazy_exports

_EXPORTS = {
    "ApgdConfig": "apgd",
    "Ball": "ball",
    "CascadeResult": "battery",
    "Target": "battery",
    "cascade": "battery",
    "PRESETS": "budget",
    "Budget": "budget",
    "AttackOutcome": "common",
    "FabConfig": "fab",
    "fab_targeted": "fab",
    "PgdConfig": "pgd",
    "pgd_linf": "pgd",
    "recheck_linf": "recheck",
    "RowRandom": "rowrandom",
    "SquareConfig": "square",
    "masking": "masking",
}

__all__ = [
    "PRESETS",
    "ApgdConfig",
    "AttackOutcome",
    "Ball",
    "Budget",
    "CascadeResult",
    "FabConfig",
    "PgdConfig",
    "RowRandom",
    "SquareConfig",
    "Target",
    "cascade",
    "fab_targeted",
    "masking",
    "pgd_linf",
    "recheck_linf",
]

if TYPE_CHECKING:
    from verifiers.attacks import masking
    from verifiers.attacks.apgd import ApgdConfig
    from verifiers.attacks.ball import Ball
    from verifiers.attacks.battery import CascadeResult, Target, cascade
    from verifiers.attacks.budget import PRESETS, Budget
    from verifiers.attacks.common import AttackOutcome
    from verifiers.attacks.fab import FabConfig, fab_targeted
    from verifiers.attacks.pgd import PgdConfig, pgd_linf
    from verifiers.attacks.recheck import recheck_linf
    from verifiers.attacks.rowrandom import RowRandom
    from verifiers.attacks.square import SquareConfig

__getattr__ = lazy_exports(__name__, _EXPORTS)
