"""Branch and bound (beta-CROWN style) over the bound engine: the complete tier.

Entry point::

    from verifiers.bounds.bab import BabConfig, branch_and_bound
    result = branch_and_bound(graph, regions, runner, BabConfig(), deadline=time.monotonic() + 30)
    result.status        # "holds" | "violated" | "unknown"
"""

from verifiers.bounds.bab.beta import OptimConfig
from verifiers.bounds.bab.search import BabConfig, BabResult, branch_and_bound

__all__ = ["BabConfig", "BabResult", "OptimConfig", "branch_and_bound"]
