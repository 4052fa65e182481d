"""Ceilings on the work one standard may ask for, so one tenant cannot hold every worker.

A standard's budgets are the tenant's to choose (``budget:``, ``explain:``, ``smoothing:``,
``certified:``), but a service must bound them: ``pgd: {steps: 1000000000000}`` parses as a
valid budget. The
defaults here are generous (far above the ``thorough`` preset and Cohen et al.'s published
smoothing counts); a service passes its own (``ROBUSTGATE_MAX_*``), an in-process run may pass
none. Pure data: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from verifiers.errors import StandardError

if TYPE_CHECKING:
    from verifiers.standards.spec import Standard


@dataclass(frozen=True)
class Ceilings:
    iterations: int = 10_000        # steps of one attack run (PGD, APGD, FAB; IG steps)
    restarts: int = 20              # restarts of one attack
    queries: int = 100_000          # Square's model queries per point
    targets: int = 100              # target classes of a targeted attack
    eot: int = 100                  # gradient draws per step (EOT); explain perturbations
    explain_samples: int = 10_000   # samples the explain check attributes
    smoothing_n: int = 1_000_000    # noise draws per point (smoothing n and n0)
    sanity_factor: int = 10         # the masking check's "stronger attack" multiplier
    time_limit_s: int = 24 * 3600   # a standard's ``time_limit_s`` (wall seconds per job)
    bab_seconds: int = 60           # certified check's branch and bound, seconds per sample
    ood_samples: int = 10_000       # images per OOD suite, and fooling images

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


DEFAULT_CEILINGS = Ceilings()


def over_ceilings(standard: Standard, ceilings: Ceilings = DEFAULT_CEILINGS) -> list[str]:
    """One line per budget of ``standard`` above a ceiling, naming both (empty: within)."""
    b = standard.budget
    asked: list[tuple[str, int, str]] = [
        ("budget.pgd.steps", b.pgd.steps, "iterations"),
        ("budget.pgd.restarts", b.pgd.restarts, "restarts"),
        ("budget.eot", b.eot, "eot"),
        ("budget.square.queries", b.square.queries, "queries"),
    ]
    for key in ("apgd_ce", "apgd_dlr", "apgd_t", "fab_t"):
        attack = getattr(b, key)
        yaml = key.replace("_", "-")
        asked += [(f"budget.{yaml}.iterations", attack.iterations, "iterations"),
                  (f"budget.{yaml}.restarts", attack.restarts, "restarts")]
        if hasattr(attack, "targets"):
            asked.append((f"budget.{yaml}.targets", attack.targets, "targets"))
    # The gradient-masking check reruns the attacks with factor x the iterations.
    asked.append(("budget.sanity.stronger_factor", b.sanity.stronger_factor, "sanity_factor"))
    ex = standard.explain
    asked += [("explain.samples", ex.samples, "explain_samples"),
              ("explain.steps", ex.steps, "iterations"),
              ("explain.deletion_steps", ex.deletion_steps, "iterations"),
              ("explain.perturbations", ex.perturbations, "eot")]
    ood = standard.ood
    asked += [("ood.samples_per_suite", ood.samples_per_suite, "ood_samples"),
              ("ood.fooling_samples", ood.adversarial.samples, "ood_samples"),
              ("ood.fooling_steps", ood.adversarial.steps, "iterations")]
    if standard.time_limit_s is not None:
        asked.append(("time_limit_s", standard.time_limit_s, "time_limit_s"))
    if standard.certified.bab_batches:
        asked.append(("certified.bab_seconds", standard.certified.bab_seconds, "bab_seconds"))
    if standard.smoothing is not None:
        asked += [("smoothing.n", standard.smoothing.n, "smoothing_n"),
                  ("smoothing.n0", standard.smoothing.n0, "smoothing_n")]
    return [f"{where} = {value} exceeds the ceiling {ceiling} <= {getattr(ceilings, ceiling)}"
            for where, value, ceiling in asked if value > getattr(ceilings, ceiling)]


def check_ceilings(standard: Standard, ceilings: Ceilings = DEFAULT_CEILINGS) -> None:
    """Raise :class:`StandardError` naming every budget above its ceiling."""
    over = over_ceilings(standard, ceilings)
    if over:
        raise StandardError("; ".join(over))
