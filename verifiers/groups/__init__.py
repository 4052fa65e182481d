"""Per-group and per-class breakdowns of clean and robust figures, and confidence bounds.

``breakdown``: per-group counts of a per-sample outcome (correct, attacked-robust) and the
worst-group figures; ``confidence``: one-sided Clopper-Pearson bounds, the simultaneous
(Bonferroni) bounds on a worst group, and a seeded bootstrap for ratios. Pure numpy/scipy:
the standards layer uses ``confidence`` to judge a threshold with its uncertainty.
"""

from verifiers.groups.breakdown import GroupCounts, breakdown
from verifiers.groups.confidence import (
    Interval,
    clopper_pearson,
    ratio_interval,
    worst_interval,
)

__all__ = ["GroupCounts", "Interval", "breakdown", "clopper_pearson", "ratio_interval",
           "worst_interval"]
