"""``adversarial``: attacked robust accuracy (an upper bound: every counted example is
confirmed on onnxruntime, a stronger attack can only lower it), spatial and corruption sweeps."""

from verifiers.catalogue.spec import EPS, NORM, CheckMetrics, MetricSpec, Placeholder, declare

ATTACK = Placeholder("attack", "an attack of the battery", (
    "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square", "spatial", "corruptions",
    "autoattack-standard"))
CORRUPTION = Placeholder("corruption", "a common corruption",
                         ("gaussian_noise", "gaussian_blur", "contrast", "brightness"))
SEVERITY = Placeholder("severity", "corruption severity 1 (mild) to 5", ("1", "2", "3", "4", "5"))
DIRECTION = Placeholder("pass_kind", "forward or backward passes", ("forward", "backward"))

# Fractions of the evaluation samples: a standard's ``confidence`` judges them with
# Clopper-Pearson bounds (the check reports the counts in ``details.counts``).
CP, SAMPLES = "clopper-pearson", "evaluation samples"

ROBUST = MetricSpec("robust_accuracy@{eps}", "higher", "accuracy under the attack battery at "
                    "this radius of the primary threat model (pointwise worst case over "
                    "attacks)", bound="upper", placeholders=(EPS,),
                    sampling=CP, counted_over=SAMPLES)
ROBUST_NORM = MetricSpec("{norm}.robust_accuracy@{eps}", "higher", "robust accuracy under a "
                         "secondary threat model", bound="upper", placeholders=(NORM, EPS),
                         sampling=CP, counted_over=SAMPLES)
AUTOATTACK = MetricSpec("autoattack.robust_accuracy@{eps}", "higher", "pyautoattack's standard "
                        "AutoAttack alone, re-checked (when the standard selects it)",
                        bound="upper", placeholders=(EPS,), sampling=CP, counted_over=SAMPLES)
AUTOATTACK_NORM = MetricSpec("{norm}.autoattack.robust_accuracy@{eps}", "higher",
                             "AutoAttack under a secondary threat model", bound="upper",
                             placeholders=(NORM, EPS), sampling=CP, counted_over=SAMPLES)
SUCCESSES = MetricSpec("successes.{attack}@{eps}", "none", "points this attack broke first in "
                       "the cascade", unit="count", placeholders=(ATTACK, EPS))
SUCCESSES_NORM = MetricSpec("{norm}.successes.{attack}@{eps}", "none", "the same under a "
                            "secondary threat model", unit="count",
                            placeholders=(NORM, ATTACK, EPS))
SPATIAL = MetricSpec("spatial.accuracy", "higher", "accuracy under the worst rotation and "
                     "translation of the grid", bound="upper")
CORRUPTION_ACC = MetricSpec("corruption.{corruption}.{severity}.accuracy", "higher",
                            "accuracy under one corruption at one severity",
                            placeholders=(CORRUPTION, SEVERITY))
CORRUPTION_MEAN = MetricSpec("corruption.mean_accuracy", "higher",
                             "mean accuracy over the corruptions and severities")

METRICS = declare(CheckMetrics("adversarial", "attacked robust accuracy and non-Lp sweeps", (
    ROBUST, ROBUST_NORM, AUTOATTACK, AUTOATTACK_NORM, SUCCESSES, SUCCESSES_NORM,
    MetricSpec("forward_passes", "none", "forward passes of the Lp attacks, all samples",
               unit="count"),
    MetricSpec("backward_passes", "none", "backward passes of the Lp attacks", unit="count"),
    MetricSpec("forward_passes_per_sample", "none", "forward passes per evaluation sample, "
               "as RobustBench counts them", unit="count"),
    MetricSpec("passes.{attack}.{pass_kind}", "none", "passes spent by one attack",
               unit="count", placeholders=(ATTACK, DIRECTION)),
    MetricSpec("rejected_by_recheck", "none", "claimed examples onnxruntime did not confirm",
               unit="count"),
    MetricSpec("masking_ops", "lower", "gradient-masking ops on the input path", unit="count"),
    SPATIAL,
    MetricSpec("spatial.transforms", "none", "transforms in the spatial grid", unit="count"),
    CORRUPTION_ACC, CORRUPTION_MEAN,
), radii_from="all"))
