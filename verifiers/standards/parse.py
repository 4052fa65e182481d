"""``parse_standard``: a YAML document -> a validated, hashed :class:`Standard`.

Every error names the line and the field. Budgets and attack lists are validated by
verifiers.attacks.budget; their errors are placed on the line of the smallest piece of the
document that fails on its own (e.g. ``budget.apgd-t.steps``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from verifiers.attacks.budget import Budget, parse_attacks, parse_budget
from verifiers.errors import StandardError
from verifiers.smoothing.config import SmoothingConfig, parse_smoothing
from verifiers.standards import schema
from verifiers.standards.located import Located, Path, load
from verifiers.standards.spec import FIDELITY_UNITS, Standard

FIELDS = ("name", "version", "description", "input_domain", "threat_model", "budget",
          "attacks", "fidelity_tolerance", "fidelity_unit", "criteria", "confidence",
          "min_samples", "min_group_samples", "explain", "smoothing", "time_limit_s",
          "certified", "ood")


# Versions are stored in a 32-bit integer column; a larger one is refused here, at parse.
MAX_VERSION = 2**31 - 1


def parse_standard(document: str) -> Standard:
    """Parse and validate a YAML standard; errors say ``line N: field X ...``."""
    doc = load(document)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.at((), "a standard must be a YAML mapping (name, version, threat_model, "
                         "criteria, ...)")
    schema.known_fields(doc, (), data, FIELDS)
    name = schema.name(doc, schema.required(doc, (), data, "name"))
    version = schema.integer(doc, ("version",), schema.required(doc, (), data, "version"), 1,
                             MAX_VERSION)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise doc.error(("description",), "must be text")
    threats = schema.threat_models(doc, schema.required(doc, (), data, "threat_model"))
    budget = _budget(doc)
    attacks = _attacks(doc)
    confidence = (schema.confidence(doc, ("confidence",), data["confidence"])
                  if data.get("confidence") is not None else None)
    smoothing = _smoothing(doc)
    criteria = schema.criteria(doc, schema.required(doc, (), data, "criteria"), threats,
                               confidence, smoothing)
    tolerance = schema.number(doc, ("fidelity_tolerance",),
                              data.get("fidelity_tolerance", 1e-4), low=0.0)
    fidelity_unit = schema.choice(doc, ("fidelity_unit",), data.get("fidelity_unit", "absolute"),
                                  FIDELITY_UNITS)
    domain = schema.input_domain(doc, data.get("input_domain"))
    time_limit = data.get("time_limit_s")
    if time_limit is not None:
        time_limit = schema.number(doc, ("time_limit_s",), time_limit, low=0.0)
        if time_limit <= 0:
            raise doc.error(("time_limit_s",), "must be a number of seconds > 0")
    return Standard(
        name=name, version=version, description=description.strip(), norm=threats[0].norm,
        eps=threats[0].eps, pgd=budget.pgd, fidelity_tolerance=tolerance, criteria=criteria,
        sha256=hashlib.sha256(document.encode()).hexdigest(), document=document,
        threat_models=threats, budget=budget, attacks=attacks, input_domain=domain,
        fidelity_unit=fidelity_unit,
        confidence=confidence,
        min_samples=schema.integer(doc, ("min_samples",), data.get("min_samples", 0), 0),
        min_group_samples=schema.integer(doc, ("min_group_samples",),
                                         data.get("min_group_samples", 0), 0),
        explain=schema.explain(doc, data.get("explain"), domain),
        explain_requested="explain" in data or any(c.check == "explain" for c in criteria),
        smoothing=smoothing, time_limit_s=time_limit,
        certified=schema.certified(doc, data.get("certified")),
        ood=schema.ood(doc, data.get("ood")),
    )


def _budget(doc: Located) -> Budget:
    raw = doc.data.get("budget")
    try:
        return parse_budget(raw)
    except StandardError as exc:
        raise doc.at(_budget_culprit(raw), str(exc)) from exc


def _budget_culprit(raw: Any) -> Path:
    if not isinstance(raw, dict):
        return ("budget",)
    for key, value in raw.items():
        if not _fails(parse_budget, {key: value}):
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if _fails(parse_budget, {key: {sub: v}}):
                    return ("budget", key, sub)
        return ("budget", key)
    return ("budget",)


def _smoothing(doc: Located) -> SmoothingConfig | None:
    if "smoothing" not in doc.data:
        return None
    raw = doc.data["smoothing"]
    try:
        return parse_smoothing(raw)
    except StandardError as exc:
        raise doc.at(_smoothing_culprit(raw), str(exc)) from exc


def _smoothing_culprit(raw: Any) -> Path:
    if not isinstance(raw, dict):
        return ("smoothing",)
    for key, value in raw.items():
        if not _fails(parse_smoothing, {key: value}):
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if _fails(parse_smoothing, {key: [item]}) or item in value[:i]:
                    return ("smoothing", key, i)
        return ("smoothing", key)
    return ("smoothing",)


def _attacks(doc: Located) -> tuple[str, ...]:
    raw, budget_raw = doc.data.get("attacks"), doc.data.get("budget")
    try:
        return parse_attacks(raw, budget_raw)
    except StandardError as exc:
        raise doc.at(_attacks_culprit(raw), str(exc)) from exc


def _attacks_culprit(raw: Any) -> Path:
    if isinstance(raw, list):
        names = [str(a).lower() for a in raw]
        for i, attack in enumerate(raw):
            if _fails(parse_attacks, [attack], None) or names[i] in names[:i]:
                return ("attacks", i)
    return ("attacks",)


def _fails(parser: Callable[..., Any], *args: Any) -> bool:
    try:
        parser(*args)
    except StandardError:
        return True
    return False
