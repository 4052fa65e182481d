"""``clean``: accuracy on the evaluation set, onnxruntime on the uploaded model."""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, declare

ACCURACY = MetricSpec("accuracy", "higher", "fraction of evaluation samples classified correctly",
                      sampling="clopper-pearson", counted_over="evaluation samples")

METRICS = declare(CheckMetrics("clean", "accuracy with onnxruntime on the uploaded model", (
    ACCURACY,
    MetricSpec("n_samples", "none", "evaluation samples", unit="count"),
    MetricSpec("n_correct", "none", "evaluation samples classified correctly", unit="count"),
)))
