"""Metric specs, placeholders and the catalogue registry (no family declared here)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["higher", "lower", "none"]
Bound = Literal["exact", "upper", "lower"]
# How a standard's ``confidence`` judges the metric: "clopper-pearson" for a fraction of
# samples (a check reports the counts in ``details.counts``, one ``[k, n]`` per group: the value
# is the smallest fraction), "bootstrap" for a ratio of group fractions, "none" otherwise.
Sampling = Literal["none", "clopper-pearson", "bootstrap"]
SAMPLINGS: tuple[Sampling, ...] = ("none", "clopper-pearson", "bootstrap")
DIRECTIONS: tuple[Direction, ...] = ("higher", "lower", "none")
BOUNDS: tuple[Bound, ...] = ("exact", "upper", "lower")

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# Open placeholders whose values are radii as a standard writes them: a threat model's eps,
# the smoothing section's L2 radii.
RADIUS_PLACEHOLDERS = ("eps", "radius")


@dataclass(frozen=True)
class Placeholder:
    """A variable part of a metric key. ``values`` is the closed vocabulary, if there is one;
    an open placeholder (eps, group names) matches any label and is checked against the
    standard by whoever knows it."""

    name: str
    description: str
    values: tuple[str, ...] = ()

    def regex(self) -> str:
        if self.values:
            alternatives = "|".join(re.escape(v) for v in sorted(self.values, key=len,
                                                                   reverse=True))
            return f"(?P<{self.name}>{alternatives})"
        # Radii ("8/255", "0.25") may hold dots; other open values stop at one.
        dotted = self.name in RADIUS_PLACEHOLDERS
        return f"(?P<{self.name}>[^@]+?)" if dotted else f"(?P<{self.name}>[^.@]+)"


# Shared placeholders: a radius of a threat model the standard lists, and a secondary norm.
EPS = Placeholder("eps", "a radius the standard's threat model lists, as written there")
NORM = Placeholder("norm", "a secondary threat model's norm", ("l1", "l2", "linf"))


@dataclass(frozen=True)
class MetricSpec:
    """One metric key pattern of one check."""

    pattern: str                      # key inside the check, e.g. "robust_accuracy@{eps}"
    direction: Direction              # which way is better ("none": informational)
    description: str
    bound: Bound = "exact"            # the reported value vs the truth
    unit: str = "fraction"
    placeholders: tuple[Placeholder, ...] = ()
    # A figure judged on a sample: how its confidence interval is computed, and over what
    # the fraction counts ("evaluation samples", "the samples of each group").
    sampling: Sampling = "none"
    counted_over: str = ""

    def __post_init__(self) -> None:
        if self.sampling != "none" and (self.unit != "fraction" or not self.counted_over):
            raise ValueError(f"metric {self.pattern!r}: a sampled metric is a fraction and "
                             "says what it counts over")
        used = set(_PLACEHOLDER.findall(self.pattern))
        declared = {p.name for p in self.placeholders}
        if used != declared:
            raise ValueError(f"metric {self.pattern!r}: placeholders {sorted(used)} in the "
                             f"pattern, {sorted(declared)} declared")
        if self.bound != "exact" and self.direction == "none":
            raise ValueError(f"metric {self.pattern!r}: a one-sided bound needs a direction")

    def key(self, **values: str) -> str:
        """The concrete key for these placeholder values (every one required)."""
        return self.pattern.format(**values)

    def regex(self) -> re.Pattern[str]:
        parts, pos = [], 0
        by_name = {p.name: p for p in self.placeholders}
        for m in _PLACEHOLDER.finditer(self.pattern):
            parts.append(re.escape(self.pattern[pos:m.start()]))
            parts.append(by_name[m.group(1)].regex())
            pos = m.end()
        parts.append(re.escape(self.pattern[pos:]))
        return re.compile("".join(parts))

    def examples(self, eps: Iterable[str] = ("0.1",)) -> list[str]:
        """Concrete keys with every vocabulary expanded (open placeholders: ``eps`` from the
        given labels, others left as written), for suggestions and listings."""
        keys = [self.pattern]
        for p in self.placeholders:
            values = p.values or (tuple(eps) if p.name == "eps" else (f"{{{p.name}}}",))
            keys = [k.replace(f"{{{p.name}}}", v) for k in keys for v in values]
        return keys


@dataclass(frozen=True)
class CheckMetrics:
    """What one check declares: its name, a line on what it measures, its metric specs."""

    check: str
    summary: str
    metrics: tuple[MetricSpec, ...]
    # Per-radius keys (``@{eps}``) follow these threat models: "primary" (the first one) or
    # "all" (a non-primary one is norm-qualified: ``{norm}.robust_accuracy@{eps}``).
    radii_from: Literal["primary", "all"] = "primary"

    def spec(self, pattern: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.pattern == pattern:
                return spec
        raise KeyError(f"{self.check} declares no metric {pattern!r}")


@dataclass(frozen=True)
class Match:
    check: CheckMetrics
    spec: MetricSpec
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{self.check.check}.{self.spec.pattern}"


class UnknownMetric(LookupError):
    """A path the catalogue does not declare; ``suggestion`` is the closest known path."""

    def __init__(self, path: str, problem: str, suggestion: str | None) -> None:
        hint = f"; did you mean {suggestion}?" if suggestion else ""
        super().__init__(f"{problem}{hint}")
        self.path, self.suggestion = path, suggestion


_FAMILIES: dict[str, CheckMetrics] = {}


def declare(family: CheckMetrics) -> CheckMetrics:
    """Add a check's metrics to the catalogue (once per check name)."""
    if family.check in _FAMILIES and _FAMILIES[family.check] is not family:
        raise ValueError(f"metrics of check {family.check!r} are declared twice")
    _FAMILIES[family.check] = family
    return family


def catalogue() -> dict[str, CheckMetrics]:
    """Every declared check family, by check name, in declaration order."""
    return dict(_FAMILIES)


def check_names() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def lookup(path: str, eps_labels: Iterable[str] = ()) -> Match:
    """The spec a concrete path matches, or UnknownMetric with the closest known path.

    ``eps_labels``: the standard's radius labels, to suggest concrete per-radius paths.
    """
    labels = tuple(eps_labels) or ("0.1",)
    check, dot, key = path.partition(".")
    family = _FAMILIES.get(check)
    if family is None or not dot or not key:
        problem = (f"metric {path!r} names check {check!r}, which no check declares "
                   f"(checks: {', '.join(_FAMILIES)})" if dot and key else
                   f"metric {path!r} is not a path <check>.<metric> like 'clean.accuracy'")
        return _raise(path, problem, labels)
    for spec in family.metrics:
        m = spec.regex().fullmatch(key)
        if m is not None:
            return Match(family, spec, m.groupdict())
    return _raise(path, f"metric {path!r} is not one the {check} check produces", labels)


def _raise(path: str, problem: str, labels: tuple[str, ...]) -> Match:
    known = [f"{f.check}.{k}" for f in _FAMILIES.values() for s in f.metrics
             for k in s.examples(labels)]
    close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
    raise UnknownMetric(path, problem, close[0] if close else None)
