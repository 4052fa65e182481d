"""The typed standard: what a parsed YAML document becomes (no parsing, no evaluation here)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from verifiers.attacks.budget import DEFAULT_ATTACKS, PRESETS, Budget, PgdBudget
from verifiers.ood.config import OodConfig
from verifiers.smoothing.config import SmoothingConfig

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
class DomainSpec:
    """The input domain a standard measures its eps in: a box (pixels in [0, 1]), or, for
    tabular data, declared as the box the evaluation data spans (``range: data``)."""

    low: float | None
    high: float | None
    units: str = ""
    from_data: bool = False

    def describe(self) -> str:
        where = "the range the evaluation data spans" if self.from_data else \
            f"[{self.low:g}, {self.high:g}]"
        return f"{where} ({self.units})" if self.units else where

    def as_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "units": self.units,
                "from_data": self.from_data}


FIDELITY_UNITS = ("relative", "absolute")
EXPLAIN_METHODS = ("integrated_gradients", "gradient_x_input")


@dataclass(frozen=True)
class ExplainSpec:
    """The ``explain:`` section: how the explain check attributes and what it tolerates.

    ``samples``: a seeded subset of the evaluation set is explained (all when smaller);
    ``method``: the gradient attribution on the trusted torch conversion (occlusion on
    onnxruntime without one); ``steps``: integrated-gradients steps; ``baseline``: the neutral
    input value (IG baseline, occlusion patch, deleted features, removed background);
    ``radius``/``perturbations``: max-sensitivity's L-infinity radius (input units) and draws;
    ``window``: occlusion patch side; ``deletion_steps``: points of the deletion/insertion
    curves; ``randomization_threshold``: a randomisation similarity above it makes every other
    explain criterion INCONCLUSIVE (the explanation does not depend on the model's weights).
    """

    samples: int = 64
    method: str = "integrated_gradients"
    steps: int = 16
    baseline: float = 0.0
    radius: float = 0.02
    perturbations: int = 8
    window: int = 2
    deletion_steps: int = 16
    randomization_threshold: float = 0.5


@dataclass(frozen=True)
class CertifiedSpec:
    """The ``certified:`` section: how hard the certified check tries per sample.

    ``bab_batches``: branch-and-bound work per sample the bounds alone leave undecided (and no
    attack broke), in batches of subdomains: the same on every machine, so the same inputs give
    the same figures (DESIGN). 0 (the default) turns branch and bound off. ``bab_seconds``: a
    wall-clock cap per sample; a sample it cuts before its work budget makes the certified
    figures INCONCLUSIVE (they would depend on the machine's speed). Only spent when a
    criterion names a ``certified.`` metric.
    """

    bab_batches: int = 0
    bab_seconds: float = 10.0


# Parse-time limits, whatever a server allows: an hour per sample is no longer a budget.
MAX_BAB_SECONDS = 3600.0
MAX_BAB_BATCHES = 100_000


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
    # None: a document written before domains were declared (its submissions must give the
    # input range explicitly: nothing is guessed).
    input_domain: DomainSpec | None = None
    # relative: |onnxruntime - torch| / the sample's output range; absolute: output units
    # (what documents without the field meant).
    fidelity_unit: str = "absolute"
    # Sample-size rules: fewer evaluation samples than ``min_samples`` makes every criterion
    # INCONCLUSIVE; groups (and classes) under ``min_group_samples`` are left out of worst
    # figures and named. ``confidence``: the default level of criteria on sampled metrics.
    min_samples: int = 0
    min_group_samples: int = 0
    confidence: float | None = None
    explain: ExplainSpec = field(default_factory=ExplainSpec)
    # Whether the document asks for explanations (an ``explain:`` section or an ``explain.*``
    # criterion): the explain check runs only then, like smoothing.
    explain_requested: bool = False
    # The ``smoothing:`` section (randomized-smoothing certificates); None when absent.
    smoothing: SmoothingConfig | None = None
    # ``time_limit_s``: wall seconds the whole job may take, counted from its start; what
    # could not finish in time is INCONCLUSIVE with the reason (None: no limit of its own).
    time_limit_s: float | None = None
    certified: CertifiedSpec = field(default_factory=CertifiedSpec)
    # The ``ood:`` section: suite and fooling sizes (defaults: OodConfig's; large models on a
    # CPU need smaller ones, the ceilings bound larger ones).
    ood: OodConfig = field(default_factory=OodConfig)

    @property
    def threats(self) -> tuple[ThreatModel, ...]:
        """Every threat model, the primary one (``norm``, ``eps``) first."""
        return self.threat_models or (ThreatModel(self.norm, self.eps),)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "description": self.description,
                "input_domain": self.input_domain.as_dict() if self.input_domain else None}
