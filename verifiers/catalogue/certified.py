"""``certified``: bound-propagated certified accuracy, a LOWER bound on the true robust one."""

from verifiers.catalogue.spec import EPS, CheckMetrics, MetricSpec, declare

CERTIFIED = MetricSpec("certified_accuracy@{eps}", "higher", "fraction of samples proven "
                       "robust at this radius by bound propagation (IBP, CROWN)",
                       bound="lower", placeholders=(EPS,), sampling="clopper-pearson",
                       counted_over="evaluation samples")

METRICS = declare(CheckMetrics("certified", "certified accuracy from the bound engine",
                               (CERTIFIED,)))
