"""Advice on a standard that parses: what it leaves undeclared or judges weakly.

``parse_standard`` refuses what cannot mean anything; ``lint`` names what means less than a
reader would assume. New uploads must declare their input domain (``required``); the rest is
advice, printed by ``robustgate standards lint``.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifiers import catalogue
from verifiers.standards.spec import Standard


@dataclass(frozen=True)
class Finding:
    severity: str   # "error" (refused on upload) or "warning"
    message: str


def lint(std: Standard) -> list[Finding]:
    found: list[Finding] = []
    if std.input_domain is None:
        found.append(Finding("error", (
            "no input_domain: the eps have no units, and every submission would have to give "
            "its input range; declare one, e.g. input_domain: {low: 0.0, high: 1.0, units: "
            "pixel intensity}, or {range: data, units: ...} for tabular inputs")))
    if std.fidelity_unit == "absolute":
        found.append(Finding("warning", (
            "fidelity_unit is absolute (the default for older documents): the tolerance then "
            "scales with the logits; fidelity_unit: relative judges the conversion against "
            "each sample's output range")))
    for c in std.criteria:
        spec = catalogue.lookup(c.metric).spec
        if spec.direction == "none":
            found.append(Finding("warning", f"{c.metric} is informational ({spec.description}); "
                                            "a criterion on it gates on bookkeeping"))
    if not any(c.check == "adversarial" for c in std.criteria):
        found.append(Finding("warning", "no criterion on adversarial robustness"))
    return found
