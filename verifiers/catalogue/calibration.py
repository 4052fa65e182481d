"""``calibration``: does confidence match accuracy, on clean and adversarial inputs?"""

from verifiers.catalogue.spec import EPS, CheckMetrics, MetricSpec, Placeholder, declare

GROUP = Placeholder("group", "which samples", ("correct", "misclassified"))
STAT = Placeholder("stat", "mean or max", ("mean", "max"))

METRICS = declare(CheckMetrics("calibration", "calibration of the confidence", (
    MetricSpec("ece", "lower", "expected calibration error (15 equal-width bins)"),
    MetricSpec("mce", "lower", "maximum calibration error over the bins"),
    MetricSpec("brier", "lower", "Brier score", unit="score"),
    MetricSpec("nll", "lower", "negative log-likelihood", unit="nats"),
    MetricSpec("accuracy", "higher", "accuracy the calibration was measured at"),
    MetricSpec("mean_confidence", "none", "mean top-class probability"),
    MetricSpec("n_misclassified", "none", "misclassified samples", unit="count"),
    MetricSpec("{stat}_confidence_{group}", "none", "confidence on correct / misclassified "
               "samples", placeholders=(STAT, GROUP)),
    MetricSpec("{stat}_confidence_adversarial@{eps}", "lower", "confidence on the confirmed "
               "adversarial examples at this radius", placeholders=(STAT, EPS)),
)))
