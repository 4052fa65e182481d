"""The Lp attack registry: one protocol for every attack the cascade runs.

An attack registers an :class:`LpAttack`: its name, the norms it handles, whether it needs
gradients (a trusted torch module), its place in the cascade, the salt of its per-point
randomness, and ``run(call) -> Claimed``. The cascade (``battery``) runs the selected ones in
order and re-checks every claim on onnxruntime; adding an attack is its module plus one
``register`` call, imported in ``verifiers/attacks/lp.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verifiers.attacks.ball import Ball
from verifiers.attacks.budget import Budget
from verifiers.attacks.rowrandom import Randomness
from verifiers.attacks.target import Target
from verifiers.data import InputDomain


@dataclass(frozen=True)
class AttackCall:
    """One batch of still-robust points for one attack."""

    target: Target
    x: np.ndarray
    y: np.ndarray
    ball: Ball
    domain: InputDomain
    budget: Budget
    rand: Randomness


@dataclass(frozen=True)
class Claimed:
    """What an attack claims, before the re-check: a mask, candidates, passes spent."""

    fooled: np.ndarray
    x_adv: np.ndarray
    forward: int
    backward: int


@dataclass(frozen=True)
class LpAttack:
    name: str
    norms: tuple[str, ...]
    needs_gradients: bool
    order: int      # cheap white-box first, then the black-box witness
    # Salts the per-point randomness (RowRandom). Fixed for good: adding an attack must not
    # shift another's random starts, so the same seed gives the same figures.
    salt: int
    run: Callable[[AttackCall], Claimed]

    def unsupported(self, norm: str, white_box: bool) -> str:
        """'' if this attack can run here, else why not."""
        if self.needs_gradients and not white_box:
            return "needs gradients: no trusted torch module"
        if norm not in self.norms:
            return f"{self.name} supports {self.norms}"
        return ""


_REGISTRY: dict[str, LpAttack] = {}


def register(attack: LpAttack) -> LpAttack:
    if attack.name in _REGISTRY:
        raise ValueError(f"attack {attack.name!r} is registered twice")
    if any(a.salt == attack.salt for a in _REGISTRY.values()):
        raise ValueError(f"attack {attack.name!r} reuses salt {attack.salt}")
    _REGISTRY[attack.name] = attack
    return attack


def lp_attacks() -> tuple[LpAttack, ...]:
    """Every registered attack, in cascade order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda a: a.order))


def get(name: str) -> LpAttack:
    return _REGISTRY[name]
