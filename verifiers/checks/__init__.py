"""The battery: registered checks, run in the order their context facts impose.

A check is a module with ``NAME``, ``run(ctx) -> CheckResult`` and one
``register(Check(...))`` (verifiers.checks.registry). Importing this package fills the
registry; criteria name metrics as ``<check name>.<metric key>`` (verifiers.catalogue).
"""

from __future__ import annotations

from verifiers.checks import (  # noqa: F401  (each registers itself)
    adversarial,
    calibration,
    certified,
    classes,
    clean,
    explain,
    fidelity,
    ood,
    sanity,
    smoothing,
    subgroups,
)
from verifiers.checks.context import RunContext
from verifiers.checks.registry import Check, battery, register, split

# The order and the sharded split, derived once from the registrations.
BATTERY: tuple[Check, ...] = battery()
PREPARE, SHARDED, AFTER_ATTACKS = split(BATTERY)

__all__ = ["AFTER_ATTACKS", "BATTERY", "PREPARE", "SHARDED", "Check", "RunContext", "battery",
           "register", "split"]
