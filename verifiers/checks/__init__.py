"""The battery: checks run in this order, each reading what earlier ones left in the context.

A check is a module with ``NAME`` and ``run(ctx) -> CheckResult``. Criteria name metrics as
``<check NAME>.<metric key>``.
"""

from __future__ import annotations

from types import ModuleType

from verifiers.checks import adversarial, calibration, certified, clean, fidelity, ood, sanity
from verifiers.checks.context import RunContext

# Order matters: clean sets ctx.correct, fidelity sets ctx.module; calibration reads the
# adversarial examples the adversarial check leaves in ctx.per_sample; sanity (gradient-masking
# checks) must follow adversarial directly: it can set that check's status to inconclusive;
# certified cross-checks every certified sample against the attacks' per-sample results.
BATTERY: tuple[ModuleType, ...] = (clean, fidelity, adversarial, sanity, certified, ood,
                                    calibration)
# A sharded run: PREPARE once, the adversarial check's attacks per sample chunk (the heavy
# shards), then its summary and the checks AFTER it on the whole set.
PREPARE: tuple[ModuleType, ...] = BATTERY[:2]
AFTER_ATTACKS: tuple[ModuleType, ...] = BATTERY[3:]

__all__ = ["AFTER_ATTACKS", "BATTERY", "PREPARE", "RunContext"]
