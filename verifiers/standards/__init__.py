"""Robustness standards: fixed before the run, versioned, hashed, evaluated on a scorecard.

A standard is a YAML document: threat models (norm, eps list), attack budgets and the
attacks to run, and criteria (metric path, comparator, threshold, severity). The verdict is
PASS only when every required criterion passed on evidence actually obtained.

``threat_model`` is one mapping ``{norm, eps}`` or a list of them; the first is the primary
one (metric ``adversarial.robust_accuracy@<eps>``), the others are norm-qualified
(``adversarial.l2.robust_accuracy@0.5``). ``budget`` takes a ``preset`` (quick, standard,
thorough) and per-attack overrides; ``attacks`` selects attacks (see verifiers.attacks.budget).

Sampling: ``confidence`` (top level, or per criterion) judges fractions of samples and ratios
of group fractions on a confidence interval (PASS on the lower bound, FAIL on the upper, else
INCONCLUSIVE); ``min_samples`` makes every criterion INCONCLUSIVE on a smaller evaluation set;
``min_group_samples`` leaves smaller groups and classes out of the worst-group figures, which
then cannot PASS (see verifiers.standards.evaluate and verifiers/checks/subgroups.py).

Time: ``time_limit_s`` caps the job's wall time; checks the run could not finish in time are
INCONCLUSIVE with the reason, and the job still ends with a signed scorecard
(verifiers.pipeline, verifiers.interrupt).

Modules: ``spec`` (the typed standard), ``located`` (YAML with line numbers), ``schema`` (field
rules), ``parse`` (``parse_standard``), ``builtin`` (the built-ins), ``evaluate`` (verdict).
"""

from verifiers.standards.builtin import (
    builtin_dir,
    builtin_standards,
    builtin_versions,
    get_builtin,
)
from verifiers.standards.evaluate import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    CriterionResult,
    evaluate,
    evaluate_criterion,
)
from verifiers.standards.parse import parse_standard
from verifiers.standards.spec import Criterion, Eps, Standard, ThreatModel

__all__ = [
    "FAIL",
    "INCONCLUSIVE",
    "PASS",
    "Criterion",
    "CriterionResult",
    "Eps",
    "Standard",
    "ThreatModel",
    "builtin_dir",
    "builtin_standards",
    "builtin_versions",
    "evaluate",
    "evaluate_criterion",
    "get_builtin",
    "parse_standard",
]
