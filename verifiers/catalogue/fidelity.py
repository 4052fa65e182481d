"""``fidelity``: does the torch conversion compute what onnxruntime computes?

Judged relative to each sample's output range (max - min of onnxruntime's outputs), a unit
that does not grow with the logits; the absolute figures stay for people and old standards.
"""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, Placeholder, declare

WHERE = Placeholder("where", "which inputs: the evaluation set, random points of the "
                             "perturbation set, or the logits of a cut softmax head",
                    ("eval", "perturbation", "logits"))

MAX_ABS = MetricSpec("max_abs_diff", "lower", "max |onnxruntime - torch| over every compared "
                     "output, in the model's output units", unit="output units")
MAX_ABS_WHERE = MetricSpec("max_abs_diff_{where}", "lower", "max |onnxruntime - torch| on one "
                           "input set", unit="output units", placeholders=(WHERE,))
MAX_REL = MetricSpec("max_rel_diff", "lower", "max over samples of max |onnxruntime - torch| "
                     "divided by that sample's output range (max - min of onnxruntime's "
                     "outputs); judged against the standard's fidelity_tolerance",
                     unit="fraction of the output range")
MAX_REL_WHERE = MetricSpec("max_rel_diff_{where}", "lower", "max_rel_diff on one input set",
                           unit="fraction of the output range", placeholders=(WHERE,))
AGREEMENT = MetricSpec("prediction_agreement", "higher", "fraction of compared inputs where "
                       "onnxruntime and torch predict the same class")

METRICS = declare(CheckMetrics("fidelity", "agreement of the torch conversion with onnxruntime", (
    MAX_ABS, MAX_ABS_WHERE, MAX_REL, MAX_REL_WHERE, AGREEMENT,
    MetricSpec("tolerance", "none", "the standard's tolerance, in the unit it judges",
               unit="as fidelity_unit"),
)))
