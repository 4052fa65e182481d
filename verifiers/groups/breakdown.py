"""Per-group counts of a per-sample outcome, and which groups are too small to judge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupCounts:
    """One group: its label (as shown in metric keys), samples, and successes per outcome."""

    label: str
    n: int
    k: dict[str, int]

    def fraction(self, outcome: str) -> float:
        return self.k[outcome] / self.n


def breakdown(ids: np.ndarray, labels: dict[int, str],
              outcomes: dict[str, np.ndarray]) -> list[GroupCounts]:
    """Counts per group id present in ``ids`` (sorted by id); ``outcomes`` maps a name
    ("accuracy", "robust_accuracy@0.1") to a boolean per sample."""
    groups = []
    for gid in np.unique(ids):
        member = ids == gid
        groups.append(GroupCounts(labels.get(int(gid), str(int(gid))), int(member.sum()),
                                  {name: int(hit[member].sum())
                                   for name, hit in outcomes.items()}))
    return groups
