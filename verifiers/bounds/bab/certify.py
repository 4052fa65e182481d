"""Branch and bound for the samples the bounds alone leave undecided (the certified check).

A sample with label ``l`` is robust on its L-infinity ball when no class ``j`` reaches
``y_j >= y_l`` there: one region per margin the bound did not prove (``y_l - y_j <= 0`` is the
violation), all decided by one search under the sample's own work budget (``batches``:
the same answer on every machine) and a wall-clock cap (``seconds_per_sample``). A sample
cut by the cap before its work budget is reported in ``time_capped``: its answer would depend
on the machine's speed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from verifiers.bounds.bab.search import BabConfig, branch_and_bound
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.vnnlib import Region
from verifiers.data import InputDomain
from verifiers.model import OnnxRunner


@dataclass(frozen=True)
class BabCertifyResult:
    certified: np.ndarray  # bool [N]: every open margin proved by branch and bound
    counterexample: np.ndarray  # bool [N]: a rival class reaches the label's logit (confirmed)
    time_capped: np.ndarray  # bool [N]: the wall-clock cap ended the search before its budget
    seconds: float


def certify_undecided(graph: BoundGraph, runner: OnnxRunner, x: np.ndarray, y: np.ndarray,
                      eps: float, domain: InputDomain, margins: np.ndarray,
                      batches: int, seconds_per_sample: float,
                      config: BabConfig = BabConfig()) -> BabCertifyResult:
    """``margins`` [N, K]: lower bounds of ``y_label - y_j`` already found (> 0: proved)."""
    t0 = time.perf_counter()
    certified = np.zeros(len(x), dtype=bool)
    broken = np.zeros(len(x), dtype=bool)
    capped = np.zeros(len(x), dtype=bool)
    config = dataclasses.replace(config, max_batches=batches)
    k = margins.shape[1]
    for i, (xi, label) in enumerate(zip(x, y, strict=True)):
        flat = np.asarray(xi, dtype=np.float64).ravel()
        lower = np.maximum(flat - eps, domain.low)
        upper = np.minimum(flat + eps, domain.high)
        regions = []
        for j in range(k):
            if j == label or margins[i, j] > 0:
                continue
            row = np.zeros((1, k))
            row[0, label], row[0, j] = 1.0, -1.0
            regions.append(Region(lower, upper, row, np.zeros(1), np.array([False])))
        if not regions:
            certified[i] = True
            continue
        result = branch_and_bound(graph, regions, runner, config,
                                  time.monotonic() + seconds_per_sample)
        certified[i] = result.status == "holds"
        broken[i] = result.status == "violated"
        capped[i] = result.stopped_by == "time"
    return BabCertifyResult(certified, broken, capped, time.perf_counter() - t0)
