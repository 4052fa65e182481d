"""``sanity``: gradient-masking checks on the attack evidence (Carlini et al. 2019)."""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, Placeholder, declare

FINDING = Placeholder("finding", "one gradient-masking check",
                      ("large_eps", "budget", "blackbox", "monotone", "masking"))

METRICS = declare(CheckMetrics("sanity", "gradient-masking checks on the attacks", (
    MetricSpec("passed", "higher", "1 when every applicable check passed, else 0",
               unit="0 or 1"),
    MetricSpec("points", "none", "points the checks ran on", unit="count"),
    MetricSpec("{finding}.passed", "higher", "1 when this check passed, else 0",
               unit="0 or 1", placeholders=(FINDING,)),
    MetricSpec("{finding}.value", "none", "the figure this check judged",
               unit="count", placeholders=(FINDING,)),
)))
