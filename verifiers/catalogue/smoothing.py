"""``smoothing``: randomized-smoothing certificates (Cohen et al. 2019) of the SMOOTHED model.

Figures describe g(x) = argmax_c P(f(x + noise) = c), which a deployment must run for them to
apply; radii are L2, in the standard's input units, listed in its ``smoothing.radii``. Each
certificate holds with probability at least 1 - alpha over the noise drawn (real arithmetic:
not floating-point sound), so certified figures are lower bounds in that sense.
"""

from verifiers.catalogue.spec import CheckMetrics, MetricSpec, Placeholder, declare

RADIUS = Placeholder("radius", "an L2 radius the standard's smoothing section lists (radii), "
                               "as written there")
CP = "clopper-pearson"
OVER = "the evaluation samples the smoothing check certifies (smoothing.samples)"

CERTIFIED = MetricSpec("certified_accuracy@{radius}", "higher", "fraction of certified "
                       "samples the smoothed classifier gets right with a certified L2 radius "
                       "of at least this one", bound="lower", placeholders=(RADIUS,),
                       sampling=CP, counted_over=OVER)
CLEAN = MetricSpec("clean_accuracy", "higher", "accuracy of the smoothed classifier (PREDICT; "
                   "an abstention counts as an error)", sampling=CP, counted_over=OVER)
ABSTAIN = MetricSpec("abstain_rate", "lower", "fraction of certified samples where CERTIFY "
                     "abstains (class probability lower bound under 1/2)", sampling=CP,
                     counted_over=OVER)
ACR = MetricSpec("average_certified_radius", "higher", "mean certified L2 radius, 0 for a "
                 "wrong or abstained sample (ACR)", bound="lower", unit="L2 radius")
MAX_RADIUS = MetricSpec("max_certifiable_radius", "none", "largest radius the estimation "
                        "samples can certify at level alpha: sigma * Phi^-1(alpha^(1/N))",
                        unit="L2 radius")
N_CERTIFIED = MetricSpec("n_samples", "none", "evaluation samples certified", unit="count")

METRICS = declare(CheckMetrics(
    "smoothing", "randomized-smoothing certificates of the smoothed classifier (L2)",
    (CERTIFIED, CLEAN, ABSTAIN, ACR, MAX_RADIUS, N_CERTIFIED)))
