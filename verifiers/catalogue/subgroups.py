"""``subgroups`` and ``classes``: clean and attacked robust accuracy per group of the
evaluation set (its optional ``group`` array) and per class, and the worst of them.

Worst-group figures are the smallest fraction over the groups with at least the standard's
``min_group_samples`` samples; when a smaller group is left out the check names it and the
worst figures cannot PASS a criterion (``details.partial``); a miss still FAILs, since the
worst over fewer groups can only over-state the worst over all. Robust accuracy, as in the
adversarial check, is an upper bound on the true one.
"""

from verifiers.catalogue.spec import EPS, CheckMetrics, MetricSpec, Placeholder, declare

CP, BOOT = "clopper-pearson", "bootstrap"
GROUP = Placeholder("group", "a group of the evaluation set: its name in group_names, else its "
                             "integer id")
CLASS = Placeholder("cls", "a class label (integer)")


def _family(unit: str, units: str, per: str, key: Placeholder) -> tuple[MetricSpec, ...]:
    over = f"the samples of each {unit}"
    one = f"the samples of that {unit}"
    return (
        MetricSpec("worst.accuracy", "higher", f"accuracy of the worst {unit}",
                   sampling=CP, counted_over=over),
        MetricSpec("best.accuracy", "none", f"accuracy of the best {unit}"),
        MetricSpec("worst.robust_accuracy@{eps}", "higher", f"attacked robust accuracy of "
                   f"the worst {unit} at this radius of the primary threat model",
                   bound="upper", placeholders=(EPS,), sampling=CP, counted_over=over),
        MetricSpec(f"{per}.{{{key.name}}}.accuracy", "higher", f"accuracy of one {unit}",
                   placeholders=(key,), sampling=CP, counted_over=one),
        MetricSpec(f"{per}.{{{key.name}}}.robust_accuracy@{{eps}}", "higher",
                   f"attacked robust accuracy of one {unit}", bound="upper",
                   placeholders=(key, EPS), sampling=CP, counted_over=one),
        MetricSpec(f"{per}.{{{key.name}}}.n_samples", "none", f"samples of one {unit}",
                   unit="count", placeholders=(key,)),
        MetricSpec(f"n_{units}", "none", f"{units} in the evaluation set", unit="count"),
        MetricSpec("n_excluded", "none", f"{units} left out of the worst figures (fewer "
                   "samples than the standard's min_group_samples)", unit="count"),
    )


SUBGROUPS = declare(CheckMetrics(
    "subgroups", "accuracy and robust accuracy per group of the evaluation set",
    (*_family("group", "groups", "group", GROUP),
     MetricSpec("accuracy_ratio", "higher", "accuracy of the worst group over the best one "
                "(the four-fifths rule reads >= 0.8)", sampling=BOOT,
                counted_over="the samples of each group"))))

CLASSES = declare(CheckMetrics(
    "classes", "accuracy and robust accuracy per class",
    _family("class", "classes", "class", CLASS)))
