"""``ood``: out-of-distribution overconfidence (synthetic suites, an uploaded set, fooling).

Scores: MSP, max-logit and energy, in-distribution as the positive class. ``worst`` is the
weakest non-adversarial suite, ``worst_in_range`` the weakest inside the valid input range.
The ``adversarial`` suite is found by a search, so its figures are one-sided bounds.
"""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, Placeholder, declare

SUITE = Placeholder("suite", "an OOD suite, or the worst case over suites", (
    "uniform_noise", "gaussian_noise", "constant", "blobs", "permuted_pixels", "patch_shuffled",
    "inverted", "far_away", "user", "worst", "worst_in_range"))
SCORE = Placeholder("score", "the OOD score", ("msp", "max_logit", "energy"))
WORST, WORST_IN_RANGE, ADVERSARIAL = "worst", "worst_in_range", "adversarial"

AUROC = MetricSpec("{suite}.auroc.{score}", "higher", "AUROC of ID vs this suite (ID positive)",
                   placeholders=(SUITE, SCORE))
FPR = MetricSpec("{suite}.fpr95.{score}", "lower", "fraction of OOD inputs accepted at the "
                 "threshold keeping 95% of ID inputs", placeholders=(SUITE, SCORE))
AUPR = MetricSpec("{suite}.aupr.{score}", "higher", "AUPR-In (ID positive)",
                  placeholders=(SUITE, SCORE))
MEAN_CONF = MetricSpec("{suite}.mean_confidence", "lower", "mean top-class probability on the "
                       "suite", placeholders=(SUITE,))
MAX_CONF = MetricSpec("{suite}.max_confidence", "lower", "max top-class probability on the "
                      "suite", placeholders=(SUITE,))

METRICS = declare(CheckMetrics("ood", "overconfidence out of distribution", (
    AUROC, FPR, AUPR, MEAN_CONF, MAX_CONF,
    MetricSpec("adversarial.auroc.{score}", "higher", "AUROC against fooling images found by "
               "a search from noise", bound="upper", placeholders=(SCORE,)),
    MetricSpec("adversarial.fpr95.{score}", "lower", "FPR95 against fooling images",
               bound="lower", placeholders=(SCORE,)),
    MetricSpec("adversarial.aupr.{score}", "higher", "AUPR-In against fooling images",
               bound="upper", placeholders=(SCORE,)),
    MetricSpec("adversarial.mean_confidence", "lower", "mean confidence the fooling search "
               "reached", bound="lower"),
    MetricSpec("adversarial.max_confidence", "lower", "max confidence the fooling search "
               "reached", bound="lower"),
    MetricSpec("adversarial.certified_max_confidence", "lower", "bound-propagated upper bound "
               "on the confidence anywhere in the fooling balls", bound="upper"),
)))


def detection_key(suite: str, metric: str, score: str) -> str:
    """``<suite>.<auroc|fpr95|aupr>.<score>``, the key every OOD figure is filed under."""
    return f"{suite}.{metric}.{score}"
