"""Field rules of a standard document, each error naming the line (see ``located``).

Metric paths are checked against the metric catalogue (verifiers.catalogue): an unknown path
is refused with the closest known one suggested, a per-radius metric (``...@<eps>``) must name
a radius its threat model lists, and a comparator that points against a one-sided bound (an
upper bound judged with ``<=``, a lower bound with ``>=`` where lower is better) is refused:
the reported value could never decide such a criterion soundly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from verifiers import catalogue
from verifiers.labels import labelled_number
from verifiers.ood.config import OodConfig
from verifiers.smoothing.config import SmoothingConfig
from verifiers.standards.located import Located, Path, field_name
from verifiers.standards.spec import (
    COMPARATORS,
    EXPLAIN_METHODS,
    MAX_BAB_BATCHES,
    MAX_BAB_SECONDS,
    NORMS,
    SEVERITIES,
    CertifiedSpec,
    Criterion,
    DomainSpec,
    Eps,
    ExplainSpec,
    ThreatModel,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def known_fields(doc: Located, path: Path, raw: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = [k for k in raw if k not in known]
    if unknown:
        where = f" in {field_name(path)}" if path else ""
        raise doc.at((*path, unknown[0]), f"unknown field(s){where}: {', '.join(unknown)} "
                                          f"(known: {', '.join(known)})")


def required(doc: Located, path: Path, raw: dict[str, Any], key: str) -> Any:
    if key not in raw:
        where = f"field {field_name(path)}" if path else "the standard"
        raise doc.at(path, f"{where} lacks required field {key!r}")
    return raw[key]


def mapping(doc: Located, path: Path, raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise doc.error(path, f"must be a mapping with {what}, got {_shown(raw)}")
    return raw


def integer(doc: Located, path: Path, raw: Any, low: int, high: int | None = None) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise doc.error(path, f"must be an integer >= {low}, got {_shown(raw)}")
    if high is not None and raw > high:
        raise doc.error(path, f"must be an integer <= {high}, got {_shown(raw)}")
    return raw


def number(doc: Located, path: Path, raw: Any, low: float | None = None) -> float:
    """A finite number; numeric strings ("1e-4") are accepted as older documents wrote them."""
    value = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low:g}"
        raise doc.error(path, f"must be a finite number{bound}, got {_shown(raw)}")
    return value


def choice(doc: Located, path: Path, raw: Any, options: tuple[str, ...]) -> str:
    if raw not in options:
        raise doc.error(path, f"must be one of {', '.join(options)}, got {_shown(raw)}")
    return str(raw)


def input_domain(doc: Located, raw: Any) -> DomainSpec | None:
    """``{low, high, units}``, or ``{range: data, units}`` for tabular inputs; absent: None
    (an older document: its submissions must declare the input range)."""
    if raw is None:
        return None
    path: Path = ("input_domain",)
    raw = mapping(doc, path, raw, "low and high (or range: data), and units")
    known_fields(doc, path, raw, ("low", "high", "units", "range"))
    units = raw.get("units", "")
    if not isinstance(units, str):
        raise doc.error((*path, "units"), f"must be text, got {_shown(units)}")
    if "range" in raw:
        if raw["range"] != "data" or "low" in raw or "high" in raw:
            raise doc.error((*path, "range"), "only 'range: data' is known (the box the "
                                              "evaluation data spans, for tabular inputs), "
                                              "and it excludes low and high")
        return DomainSpec(None, None, units.strip(), from_data=True)
    low = number(doc, (*path, "low"), required(doc, path, raw, "low"))
    high = number(doc, (*path, "high"), required(doc, path, raw, "high"))
    if not low < high:
        raise doc.error(path, f"needs low < high, got [{low:g}, {high:g}]")
    return DomainSpec(low, high, units.strip())


def explain(doc: Located, raw: Any, domain: DomainSpec | None) -> ExplainSpec:
    """The optional ``explain:`` section (defaults: :class:`ExplainSpec`)."""
    if raw is None:
        return ExplainSpec()
    path: Path = ("explain",)
    raw = mapping(doc, path, raw, "explain settings (samples, method, baseline, ...)")
    defaults = ExplainSpec()
    known_fields(doc, path, raw, tuple(defaults.__dataclass_fields__))
    ints = {k: integer(doc, (*path, k), raw[k], 1) for k in
            ("samples", "steps", "perturbations", "window", "deletion_steps") if k in raw}
    floats = {k: number(doc, (*path, k), raw[k]) for k in
              ("baseline", "radius", "randomization_threshold") if k in raw}
    if floats.get("radius", 1.0) <= 0:
        raise doc.error((*path, "radius"), f"must be > 0, got {_shown(raw['radius'])}")
    if not -1.0 <= floats.get("randomization_threshold", 0.0) <= 1.0:
        raise doc.error((*path, "randomization_threshold"), "is a rank correlation: it must "
                        f"lie in [-1, 1], got {_shown(raw['randomization_threshold'])}")
    base = floats.get("baseline", defaults.baseline)
    if domain is not None and not domain.from_data and domain.low is not None \
            and domain.high is not None and not domain.low <= base <= domain.high:
        raise doc.error((*path, "baseline"), f"the neutral value {base:g} lies outside the "
                                             f"input domain {domain.describe()}")
    method = choice(doc, (*path, "method"), raw["method"], EXPLAIN_METHODS) \
        if "method" in raw else defaults.method
    return ExplainSpec(**{**defaults.__dict__, **ints, **floats, "method": method})


def certified(doc: Located, raw: Any) -> CertifiedSpec:
    """The optional ``certified:`` section (defaults: :class:`CertifiedSpec`)."""
    if raw is None:
        return CertifiedSpec()
    path: Path = ("certified",)
    raw = mapping(doc, path, raw, "certified-check settings (bab_batches, bab_seconds)")
    known_fields(doc, path, raw, tuple(CertifiedSpec.__dataclass_fields__))
    defaults = CertifiedSpec()
    batches = integer(doc, (*path, "bab_batches"), raw["bab_batches"], 0, MAX_BAB_BATCHES) \
        if "bab_batches" in raw else defaults.bab_batches
    seconds = defaults.bab_seconds
    if "bab_seconds" in raw:
        seconds = number(doc, (*path, "bab_seconds"), raw["bab_seconds"], low=0.0)
        if seconds > MAX_BAB_SECONDS:
            raise doc.error((*path, "bab_seconds"), f"must be at most {MAX_BAB_SECONDS:g} "
                            f"seconds per sample, got {_shown(raw['bab_seconds'])}")
    return CertifiedSpec(bab_batches=batches, bab_seconds=seconds)


def ood(doc: Located, raw: Any) -> OodConfig:
    """The optional ``ood:`` section: ``samples_per_suite`` (images per generated suite),
    ``fooling_samples`` and ``fooling_steps`` (the adversarial OOD search)."""
    defaults = OodConfig()
    if raw is None:
        return defaults
    path: Path = ("ood",)
    raw = mapping(doc, path, raw, "OOD settings (samples_per_suite, fooling_samples, "
                                  "fooling_steps)")
    known_fields(doc, path, raw, ("samples_per_suite", "fooling_samples", "fooling_steps"))
    adv = defaults.adversarial
    per_suite = integer(doc, (*path, "samples_per_suite"), raw["samples_per_suite"], 2) \
        if "samples_per_suite" in raw else defaults.samples_per_suite
    fooling = integer(doc, (*path, "fooling_samples"), raw["fooling_samples"], 1) \
        if "fooling_samples" in raw else adv.samples
    steps = integer(doc, (*path, "fooling_steps"), raw["fooling_steps"], 1) \
        if "fooling_steps" in raw else adv.steps
    return dataclasses.replace(
        defaults, samples_per_suite=per_suite,
        adversarial=dataclasses.replace(adv, samples=fooling, steps=steps))


def name(doc: Located, raw: Any) -> str:
    if not isinstance(raw, str) or not NAME_PATTERN.fullmatch(raw):
        raise doc.error(("name",), "must be 1-128 characters of letters, digits, '.', '_' or "
                                   f"'-', starting with a letter or digit, got {_shown(raw)}")
    return raw


def threat_models(doc: Located, raw: Any) -> tuple[ThreatModel, ...]:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise doc.error(("threat_model",), "must be a mapping or a non-empty list of mappings")
    threats: list[ThreatModel] = []
    for i, item in enumerate(items):
        path: Path = ("threat_model", i) if isinstance(raw, list) else ("threat_model",)
        item = mapping(doc, path, item, "norm and eps")
        known_fields(doc, path, item, ("norm", "eps"))
        norm = str(item.get("norm", "linf")).lower()
        if norm not in NORMS:
            raise doc.error((*path, "norm"), f"{norm!r} is not supported (use one of {NORMS})")
        if any(t.norm == norm for t in threats):
            raise doc.error((*path, "norm"), f"{norm!r} is listed twice: one threat model per "
                                             "norm (metric names would collide)")
        eps_raw = required(doc, path, item, "eps")
        if not isinstance(eps_raw, list) or not eps_raw:
            raise doc.error((*path, "eps"), f"must be a non-empty list, got {_shown(eps_raw)}")
        eps = tuple(_eps(doc, (*path, "eps", j), e) for j, e in enumerate(eps_raw))
        labels = [e.label for e in eps]
        for j, label in enumerate(labels):
            if label in labels[:j]:
                raise doc.error((*path, "eps", j), f"lists radius {label} twice")
        threats.append(ThreatModel(norm, eps))
    return tuple(threats)


def _eps(doc: Located, path: Path, raw: Any) -> Eps:
    try:
        value, label = labelled_number(raw)
    except ValueError as exc:
        raise doc.error(path, f"= {raw!r} is not a number") from exc
    if value <= 0:
        raise doc.error(path, f"must be > 0, got {raw!r}")
    return Eps(value, label)


def confidence(doc: Located, path: Path, raw: Any) -> float:
    """A confidence level for one-sided bounds: 0.5 <= c < 1 (0.95 is the usual)."""
    value = number(doc, path, raw)
    if not 0.5 <= value < 1.0:
        raise doc.error(path, f"must be a level in [0.5, 1) such as 0.95, got {_shown(raw)}")
    return value


def criteria(doc: Located, raw: Any, threats: tuple[ThreatModel, ...],
             default_confidence: float | None = None,
             smoothing: SmoothingConfig | None = None) -> tuple[Criterion, ...]:
    if not isinstance(raw, list) or not raw:
        raise doc.error(("criteria",), f"must be a non-empty list, got {_shown(raw)}")
    out = tuple(_criterion(doc, ("criteria", i), c, threats, default_confidence, smoothing)
                for i, c in enumerate(raw))
    if not any(c.severity == "required" for c in out):
        raise doc.error(("criteria",), "needs at least one required criterion")
    return out


def _criterion(doc: Located, path: Path, raw: Any, threats: tuple[ThreatModel, ...],
               default_confidence: float | None = None,
               smoothing: SmoothingConfig | None = None) -> Criterion:
    raw = mapping(doc, path, raw, "metric, op, threshold")
    known_fields(doc, path, raw, ("metric", "op", "threshold", "severity", "confidence"))
    metric, match = metric_path(doc, (*path, "metric"), required(doc, path, raw, "metric"),
                                threats, smoothing)
    op = required(doc, path, raw, "op")
    if op not in COMPARATORS:
        raise doc.error((*path, "op"), f"must be one of {sorted(COMPARATORS)}, got {op!r}")
    _comparator_fits(doc, (*path, "op"), metric, op, match.spec)
    threshold = number(doc, (*path, "threshold"), required(doc, path, raw, "threshold"))
    severity = raw.get("severity", "required")
    if severity not in SEVERITIES:
        raise doc.error((*path, "severity"), f"must be one of {SEVERITIES}, got {severity!r}")
    level = default_confidence if match.spec.sampling != "none" else None
    if raw.get("confidence") is not None:
        if match.spec.sampling == "none":
            raise doc.error((*path, "confidence"), (
                f"{metric} is not a figure judged on a sample (a fraction of samples or a "
                "ratio of them), so it has no confidence interval"))
        level = confidence(doc, (*path, "confidence"), raw["confidence"])
    return Criterion(metric=metric, op=op, threshold=threshold, severity=severity,
                     confidence=level)


def metric_path(doc: Located, path: Path, raw: Any, threats: tuple[ThreatModel, ...],
                smoothing: SmoothingConfig | None = None) -> tuple[str, catalogue.Match]:
    """The path and its catalogue entry; unknown paths are refused with a suggestion."""
    if not isinstance(raw, str):
        raise doc.error(path, f"must be a path <check>.<metric> like 'clean.accuracy', "
                              f"got {_shown(raw)}")
    labels = [e.label for t in threats for e in t.eps]
    try:
        match = catalogue.lookup(raw, labels)
    except catalogue.UnknownMetric as exc:
        raise doc.at(path, f"field {field_name(path)}: {exc} (see `robustgate metrics`)") \
            from exc
    if "eps" in match.values:
        threat = _threat_of(doc, path, match, threats)
        label = match.values["eps"]
        known = [e.label for e in threat.eps]
        if label not in known:
            raise doc.error(path, f"asks for radius {label!r}, which the {threat.norm} threat "
                                  f"model does not list (eps: {', '.join(known)})")
    if "radius" in match.values:
        label = match.values["radius"]
        if smoothing is None:
            raise doc.error(path, f"asks for smoothing radius {label!r}, but the standard has "
                                  "no smoothing section listing its radii (smoothing: "
                                  f"{{radii: [{label!r}]}})")
        known = [r.label for r in smoothing.radii]
        if label not in known:
            raise doc.error(path, f"asks for radius {label!r}, which the smoothing section "
                                  f"does not list (radii: {', '.join(known)})")
    return raw, match


def _threat_of(doc: Located, path: Path, match: catalogue.Match,
               threats: tuple[ThreatModel, ...]) -> ThreatModel:
    """Per-radius metrics follow the primary threat model, or the secondary one whose norm
    qualifies the key (``adversarial.l2.robust_accuracy@0.5``)."""
    norm = match.values.get("norm")
    if norm is None:
        return threats[0]
    found = next((t for t in threats[1:] if t.norm == norm), None)
    if found is None:
        raise doc.error(path, f"names a secondary {norm} threat model, which the standard does "
                              f"not declare (threat models: "
                              f"{', '.join(t.norm for t in threats)}; the first one's metrics "
                              "are not norm-qualified)")
    return found


def _comparator_fits(doc: Located, path: Path, metric: str, op: str,
                     spec: catalogue.MetricSpec) -> None:
    if spec.bound == "exact":
        return
    wanted = (">=", ">") if spec.direction == "higher" else ("<=", "<")
    if op not in wanted:
        raise doc.error(path, (
            f"{op!r} cannot be judged on {metric}: the reported value is {_article(spec.bound)} "
            f"{spec.bound} bound on the true one and {spec.direction} is better, so only "
            f"{' or '.join(wanted)} is meaningful"))


def _article(bound: str) -> str:
    return "an" if bound[0] in "aeiou" else "a"


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
