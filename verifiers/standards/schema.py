"""Field rules of a standard document, each error naming the line (see ``located``).

Metric paths are checked against what the battery can produce: ``<check>.<metric>`` where the
check is one of the battery's check names (verifiers.checks.BATTERY), and a per-radius metric
(``...@<eps>``) of the adversarial, certified or calibration check names a radius the standard
lists. Other metric keys within a known check are allowed: an unknown one is reported
INCONCLUSIVE ("not produced") at evaluation, never passed.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from verifiers.standards.located import Located, Path, field_name
from verifiers.standards.spec import COMPARATORS, NORMS, SEVERITIES, Criterion, Eps, ThreatModel

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Checks whose per-radius metrics (``@<eps label>``) follow the standard's eps lists.
_PER_RADIUS = ("adversarial", "certified", "calibration")


def battery_checks() -> tuple[str, ...]:
    # The battery's modules import this package (Standard, ThreatModel): look it up lazily.
    from verifiers.checks import BATTERY

    return tuple(check.NAME for check in BATTERY)


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


def integer(doc: Located, path: Path, raw: Any, low: int) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < low:
        raise doc.error(path, f"must be an integer >= {low}, got {_shown(raw)}")
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
        if isinstance(raw, str):
            label = raw.replace(" ", "")
            value = float(Fraction(label))
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
            label = format(value, "g")
        else:
            raise TypeError(type(raw).__name__)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise doc.error(path, f"= {raw!r} is not a number") from exc
    if not math.isfinite(value) or value <= 0:
        raise doc.error(path, f"must be > 0, got {raw!r}")
    return Eps(value, label)


def criteria(doc: Located, raw: Any, threats: tuple[ThreatModel, ...]) -> tuple[Criterion, ...]:
    if not isinstance(raw, list) or not raw:
        raise doc.error(("criteria",), f"must be a non-empty list, got {_shown(raw)}")
    out = tuple(_criterion(doc, ("criteria", i), c, threats) for i, c in enumerate(raw))
    if not any(c.severity == "required" for c in out):
        raise doc.error(("criteria",), "needs at least one required criterion")
    return out


def _criterion(doc: Located, path: Path, raw: Any,
               threats: tuple[ThreatModel, ...]) -> Criterion:
    raw = mapping(doc, path, raw, "metric, op, threshold")
    known_fields(doc, path, raw, ("metric", "op", "threshold", "severity"))
    metric = metric_path(doc, (*path, "metric"), required(doc, path, raw, "metric"), threats)
    op = required(doc, path, raw, "op")
    if op not in COMPARATORS:
        raise doc.error((*path, "op"), f"must be one of {sorted(COMPARATORS)}, got {op!r}")
    threshold = number(doc, (*path, "threshold"), required(doc, path, raw, "threshold"))
    severity = raw.get("severity", "required")
    if severity not in SEVERITIES:
        raise doc.error((*path, "severity"), f"must be one of {SEVERITIES}, got {severity!r}")
    return Criterion(metric=metric, op=op, threshold=threshold, severity=severity)


def metric_path(doc: Located, path: Path, raw: Any, threats: tuple[ThreatModel, ...]) -> str:
    if not isinstance(raw, str) or "." not in raw or raw.endswith("."):
        raise doc.error(path, f"must be a path <check>.<metric> like 'clean.accuracy', "
                              f"got {_shown(raw)}")
    check, key = raw.split(".", 1)
    checks = battery_checks()
    if check not in checks:
        raise doc.error(path, f"names check {check!r}, which the battery does not run "
                              f"(checks: {', '.join(checks)})")
    if check in _PER_RADIUS and "@" in key:
        label = key.rsplit("@", 1)[1]
        threat = _threat_of(key, threats) if check == "adversarial" else threats[0]
        labels = [e.label for e in threat.eps]
        if label not in labels:
            raise doc.error(path, f"asks for radius {label!r}, which the {threat.norm} threat "
                                  f"model does not list (eps: {', '.join(labels)})")
    return raw


def _threat_of(key: str, threats: tuple[ThreatModel, ...]) -> ThreatModel:
    """Adversarial metrics of a secondary threat model are norm-qualified (``l2.…``)."""
    first = key.split(".", 1)[0]
    return next((t for t in threats[1:] if t.norm == first), threats[0])


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
