"""``explain``: Hyatt & Lee's third pillar, explainability, as figures a standard can gate on.

Attributions (integrated gradients or gradient x input on the trusted torch conversion,
occlusion on onnxruntime without one) for a seeded subset of the evaluation set, and four
questions about them: do they depend on what the model learned (cascading randomisation,
Adebayo et al. 2018), are they stable under small input changes (max-sensitivity, Yeh et al.
2019), are they faithful to the model (deletion / insertion, Petsiuk et al. 2018), and, with
an evidence mask in the evaluation set, does the model use the evidence and not the
background (relevance mass, Arras et al. 2022; accuracy with the background removed or
swapped). See verifiers/checks/explain.py for what makes a figure inconclusive.
"""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, declare

CP = "clopper-pearson"
EVAL = "evaluation samples"

METRICS = declare(CheckMetrics("explain", "attributions: randomisation sanity, stability, "
                               "faithfulness, reliance on the evidence mask", (
    MetricSpec("sanity.randomization_similarity", "lower", "mean Spearman rank correlation "
               "between the signed attributions of the model and of the same model with every "
               "weight layer re-initialised (cascading from the top); high: the explanation "
               "does not depend on what the model learned", unit="rank correlation"),
    MetricSpec("max_sensitivity", "lower", "mean over samples of the largest relative change "
               "of the attribution map, ||A(x+d) - A(x)|| / ||A(x)||, over seeded draws d in "
               "the standard's L-infinity radius", unit="ratio"),
    MetricSpec("deletion_auc", "lower", "area under the target-class probability as the "
               "most-attributed input values are replaced by the neutral value (onnxruntime)",
               unit="probability"),
    MetricSpec("insertion_auc", "higher", "area under the target-class probability as the "
               "most-attributed input values are inserted into a neutral input (onnxruntime)",
               unit="probability"),
    MetricSpec("relevance_mass_in_mask", "higher", "mean fraction of the positive "
               "attribution that lies inside the evaluation set's evidence mask"),
    MetricSpec("accuracy_background_removed", "higher", "accuracy when every input value "
               "outside the evidence mask is set to the standard's neutral value",
               sampling=CP, counted_over=EVAL),
    MetricSpec("accuracy_background_swapped", "higher", "accuracy when every input value "
               "outside the evidence mask is taken from another sample (of another label "
               "where there is one)", sampling=CP, counted_over=EVAL),
    MetricSpec("n_samples", "none", "samples explained (the seeded subset)", unit="count"),
)))
