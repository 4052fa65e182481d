"""The typed standard: what a parsed YAML document becomes (no parsing, no evaluation here)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from verifiers.attacks.budget import DEFAULT_ATTACKS, PRESETS, Budget, PgdBudget

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
}
SEVERITIES = ("required", "advisory")
NORMS = ("linf", "l2", "l1")


@dataclass(frozen=True)
class Eps:
    """A perturbation radius and the label it was written with ("8/255" stays "8/255")."""

    value: float
    label: str


@dataclass(frozen=True)
class Criterion:
    metric: str
    op: str
    threshold: float
    severity: str = "required"
    # Judge with a confidence interval at this level (metrics the catalogue marks as sampled:
    # fractions of samples, ratios of group fractions); None: the point value decides.
    confidence: float | None = None

    @property
    def check(self) -> str:
        return self.metric.split(".", 1)[0]

    @property
    def key(self) -> str:
        """The metric's name inside its check (``robust_accuracy@0.1``)."""
        return self.metric.split(".", 1)[1]


@dataclass(frozen=True)
class ThreatModel:
    norm: str
    eps: tuple[Eps, ...]

    def key(self, metric: str, primary: bool) -> str:
        """Metric name: plain for the primary threat model, norm-qualified for the others."""
        return metric if primary else f"{self.norm}.{metric}"


@dataclass(frozen=True)
class Standard:
    name: str
    version: int
    description: str
    norm: str
    eps: tuple[Eps, ...]
    pgd: PgdBudget
    fidelity_tolerance: float
    criteria: tuple[Criterion, ...]
    sha256: str
    document: str = field(repr=False, default="")
    threat_models: tuple[ThreatModel, ...] = ()
    budget: Budget = field(default_factory=lambda: PRESETS["standard"])
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    # Sample-size rules: fewer evaluation samples than ``min_samples`` makes every criterion
    # INCONCLUSIVE; groups (and classes) under ``min_group_samples`` are left out of worst
    # figures and named. ``confidence``: the default level of criteria on sampled metrics.
    min_samples: int = 0
    min_group_samples: int = 0
    confidence: float | None = None

    @property
    def threats(self) -> tuple[ThreatModel, ...]:
        """Every threat model, the primary one (``norm``, ``eps``) first."""
        return self.threat_models or (ThreatModel(self.norm, self.eps),)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "description": self.description}
