"""Standards parse strictly with the line at fault; the verdict is PASS only on evidence
actually obtained, and FAIL on one-sided evidence that already misses."""

from __future__ import annotations

import hashlib

import pytest

from verifiers import StandardError, builtin_standards, parse_standard
from verifiers.checks import BATTERY
from verifiers.scorecard import CheckResult
from verifiers.standards import FAIL, INCONCLUSIVE, PASS, builtin_dir, builtin_versions, evaluate

BASE = """\
name: t
version: 1
threat_model: {norm: linf, eps: ["8/255", 0.1]}
budget:
  preset: quick
  apgd-t: {iterations: 5}
attacks: [apgd-ce, square]
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.9}
  - {metric: adversarial.robust_accuracy@8/255, op: ">=", threshold: 0.5}
  - {metric: ood.uniform_noise.auroc.msp, op: ">=", threshold: 0.9, severity: advisory}
"""


def test_builtin_catalogue_parses_and_eps_keep_their_labels():
    assert {"demo-digits", "hyatt-lee-baseline", "linf-8_255", "l2-0_5"} <= set(
        builtin_standards())
    std = parse_standard(BASE)
    assert [e.label for e in std.eps] == ["8/255", "0.1"]
    assert std.eps[0].value == pytest.approx(8 / 255)
    assert std.budget.apgd_t.iterations == 5 and std.attacks == ("apgd-ce", "square")
    assert std.sha256 == hashlib.sha256(BASE.encode()).hexdigest()
    assert parse_standard(BASE + "\n").sha256 != std.sha256


# (edit, line the error must name, words it must contain)
MALFORMED = [
    (("version: 1", "version: one"), 2, "field version must be an integer"),
    (('op: ">=", threshold: 0.9}', 'op: "=>", threshold: 0.9}'), 9, "field criteria[0].op"),
    (("0.1]", "-0.1]"), 3, "field threat_model.eps[1] must be > 0"),
    (("severity: advisory", "severity: maybe"), 11, "field criteria[2].severity"),
    (("name: t", "name: t\nbogus: 1"), 2, "unknown field(s): bogus"),
    (("norm: linf", "norm: l7"), 3, "field threat_model.norm 'l7' is not supported"),
    (("clean.accuracy", "clear.accuracy"), 9, "check 'clear', which no check declares"),
    (("clean.accuracy", "clean.acuracy"), 9, "did you mean clean.accuracy?"),
    (("ood.uniform_noise.auroc.msp", "ood.uniform_nosie.auroc.msp"), 11,
     "did you mean ood.uniform_noise.auroc.msp?"),
    (('robust_accuracy@8/255, op: ">="', 'robust_accuracy@8/255, op: "<="'), 10,
     "the reported value is an upper bound on the true one"),
    (("clean.accuracy", "accuracy"), 9, "'accuracy' is not a path <check>.<metric>"),
    (("@8/255", "@0.3"), 10, "radius '0.3'"),
    (("iterations: 5", "steps: 5"), 6, "budget.apgd-t has unknown field(s): steps"),
    (("preset: quick", "preset: fastest"), 5, "budget.preset 'fastest' is unknown"),
    (("[apgd-ce, square]", "[apgd-ce, pgd-7]"), 7, "unknown attack(s) ['pgd-7']"),
    (("[apgd-ce, square]", "\n  - apgd-ce\n  - apgd-ce"), 9, "listed twice"),
    (("name: t", "name: t\nname: u"), 2, "field name is given twice (first on line 1)"),
    (("threshold: 0.5}", "threshold: yes}"), 10, "field criteria[1].threshold must be a"),
    (("name: t", "name: 'a b'"), 1, "field name must be"),
    (("version: 1", "version: [1"), 3, "not valid YAML"),
    (("version: 1\n", ""), 1, "lacks required field 'version'"),
    (("version: 1", "version: !!python/name:os.system ''"), 2, "field version cannot be read"),
    (("budget:", "budget: &b"), 12, "YAML aliases (*b) are not allowed"),
    (('0.1]}', '0.1, "8/255"]}'), 3, "field threat_model.eps[2] lists radius 8/255 twice"),
    ((BASE[BASE.index("criteria:"):], "criteria: []\n"), 8, "field criteria must be a non-emp"),
]


@pytest.mark.parametrize("edit, line, words", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_malformed_standards_are_refused_naming_line_and_field(edit, line, words):
    doc = BASE.replace(*edit)
    if "aliases" in words:
        doc += "extra: *b\n"
    assert doc != BASE
    with pytest.raises(StandardError) as err:
        parse_standard(doc)
    message = str(err.value)
    assert message.startswith(f"line {line}: "), message
    assert words in message


def test_a_standard_needs_a_required_criterion_and_a_mapping():
    doc = BASE.replace("threshold: 0.9}", "threshold: 0.9, severity: advisory}").replace(
        "threshold: 0.5}", "threshold: 0.5, severity: advisory}")
    with pytest.raises(StandardError, match=r"^line 8: field criteria needs at least one"):
        parse_standard(doc)
    for doc in ("", "- just\n- a list\n", "hello"):
        with pytest.raises(StandardError, match=r"^line 1: "):
            parse_standard(doc)


def test_metric_paths_follow_the_catalogue():
    """Every check of the battery declares its metrics; a path it does not declare is refused
    at parse time, with the closest known path suggested."""
    from verifiers import catalogue

    assert {check.name for check in BATTERY} == set(catalogue.check_names())
    for check in BATTERY:
        assert check.metrics is catalogue.catalogue()[check.name]
        doc = BASE.replace("ood.uniform_noise.auroc.msp", f"{check.name}.anything_at_all")
        with pytest.raises(StandardError, match="is not one the"):
            parse_standard(doc)
    # A secondary threat model's radii are norm-qualified.
    two = BASE.replace('threat_model: {norm: linf, eps: ["8/255", 0.1]}', (
        'threat_model: [{norm: linf, eps: ["8/255"]}, {norm: l2, eps: ["0.5"]}]'))
    assert parse_standard(two.replace("robust_accuracy@8/255", "l2.robust_accuracy@0.5"))
    with pytest.raises(StandardError, match="l2 threat model does not list"):
        parse_standard(two.replace("robust_accuracy@8/255", "l2.robust_accuracy@8/255"))
    with pytest.raises(StandardError, match="secondary l1 threat model"):
        parse_standard(two.replace("robust_accuracy@8/255", "l1.robust_accuracy@0.5"))
    # A lower bound judged where higher is better is fine; against its direction, refused.
    cert = BASE.replace("adversarial.robust_accuracy@8/255", "certified.certified_accuracy@0.1")
    assert parse_standard(cert).criteria[1].metric == "certified.certified_accuracy@0.1"
    with pytest.raises(StandardError, match="lower bound"):
        parse_standard(cert.replace('op: ">=", threshold: 0.5', 'op: "<", threshold: 0.5'))


def test_builtins_are_pinned_to_their_versions():
    """A built-in's document is recorded by hash at first use: changing one needs a new
    version (and a new pin here). Earlier versions stay in history/, byte for byte."""
    pins = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in sorted(builtin_dir().glob("*.yaml"))}
    history = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
               for path in sorted(builtin_dir().glob("history/*.yaml"))}
    versions = {name: std.version for name, std in builtin_standards().items()}
    assert versions == {"demo-digits": 2, "hyatt-lee-baseline": 2, "l2-0_5": 2,
                        "linf-8_255": 2}
    assert pins == {"demo-digits.yaml": "9cd4c5d77debb732",  # the demo relies on it
                    "hyatt-lee-baseline.yaml": "4d15efe334baa671",
                    "l2-0_5.yaml": "c609b87d7df9f8ac", "linf-8_255.yaml": "f80589e253fb0034"}
    assert history == {"demo-digits@1.yaml": "f92b8f98049e8b01",
                       "hyatt-lee-baseline@1.yaml": "68e0f9453d65f7eb",
                       "l2-0_5@1.yaml": "6b126e55dbac0e19",
                       "linf-8_255@1.yaml": "dd7a07ed9ff1815b"}
    for name in versions:
        assert list(builtin_versions(name)) == [1, 2]
        assert builtin_standards()[name].input_domain is not None
        assert builtin_versions(name)[1].input_domain is None  # v1 as it was stored


def test_hyatt_lee_baseline_covers_the_three_pillars():
    std = builtin_standards()["hyatt-lee-baseline"]
    required = {c.metric for c in std.criteria if c.severity == "required"}
    advisory = {c.metric for c in std.criteria if c.severity == "advisory"}
    assert {"clean.accuracy", "fidelity.max_rel_diff", "adversarial.robust_accuracy@0.1",
            "certified.certified_accuracy@0.05", "ood.worst_in_range.auroc.msp",
            "calibration.ece"} <= required
    assert "ood.far_away.auroc.msp" in advisory
    assert [e.value for e in std.eps] == sorted(e.value for e in std.eps)  # ascending
    assert std.norm == "linf" and "8x8 digits" in std.description


def _checks(adv_status: str = "ok", robust: float | None = 0.6, clean: float = 0.95,
            upper: bool = True) -> dict[str, CheckResult]:
    metrics = {} if robust is None else {"robust_accuracy@8/255": robust}
    details = {"upper_bounds": ["robust_accuracy@*", "*.robust_accuracy@*"]} if upper else {}
    return {
        "clean": CheckResult("clean", metrics={"accuracy": clean}),
        "adversarial": CheckResult("adversarial", status=adv_status, reason="masking suspected",
                                   metrics=metrics, details=details),
    }


def test_verdicts_pass_fail_inconclusive():
    std = parse_standard(BASE)
    results, verdict, _ = evaluate(std, _checks())
    assert verdict == PASS  # the advisory OOD criterion is inconclusive but not required
    assert results[1].value == 0.6 and results[1].margin == pytest.approx(0.1)
    assert results[2].result == INCONCLUSIVE and "was not run" in results[2].reason
    results, verdict, reasons = evaluate(std, _checks(robust=0.4))
    assert verdict == FAIL and "robust_accuracy@8/255" in reasons[0]
    assert results[1].margin == pytest.approx(-0.1)
    # FAIL wins over INCONCLUSIVE: evidence of failure is evidence.
    _, verdict, _ = evaluate(std, _checks(adv_status="inconclusive", robust=None, clean=0.5))
    assert verdict == FAIL
    # A check that never ran is never a pass.
    _, verdict, reasons = evaluate(std, {"clean": _checks()["clean"]})
    assert verdict == INCONCLUSIVE and "was not run" in reasons[0]
    # A metric the check did not produce is never a pass either.
    _, verdict, reasons = evaluate(std, _checks(robust=None))
    assert verdict == INCONCLUSIVE and "not produced" in reasons[0]


@pytest.mark.parametrize("status", ["inconclusive", "error"])
def test_a_check_that_is_not_ok_never_passes_a_criterion(status):
    std = parse_standard(BASE)
    for robust in (0.0, 0.5, 0.6, 1.0):
        results, verdict, reasons = evaluate(std, _checks(adv_status=status, robust=robust))
        adv = results[1]
        assert adv.result != PASS and verdict != PASS
        assert adv.value == robust and adv.margin == pytest.approx(robust - 0.5)
        if robust >= 0.5:
            assert adv.result == INCONCLUSIVE and "masking suspected" in adv.reason
            assert "cannot decide" in reasons[0]


def test_an_upper_bound_that_misses_is_a_sound_fail():
    """Attacked robust accuracy only over-states the truth: a miss is a FAIL even when the
    adversarial check is inconclusive (e.g. gradient masking suspected)."""
    std = parse_standard(BASE)
    results, verdict, reasons = evaluate(std, _checks(adv_status="inconclusive", robust=0.4))
    assert results[1].result == FAIL and verdict == FAIL
    assert "upper bound" in reasons[0] and "masking suspected" in reasons[0]
    # Without the declaration the same numbers decide nothing.
    results, verdict, _ = evaluate(std, _checks("inconclusive", robust=0.4, upper=False))
    assert results[1].result == INCONCLUSIVE and verdict == INCONCLUSIVE
    # A "<=" criterion on an upper bound is refused when the standard is parsed (the
    # catalogue); a check that errored decides nothing.
    with pytest.raises(StandardError, match="upper bound"):
        parse_standard(BASE.replace('robust_accuracy@8/255, op: ">="',
                                    'robust_accuracy@8/255, op: "<="'))
    assert evaluate(std, _checks("error", robust=0.4))[0][1].result == INCONCLUSIVE
    # Norm-qualified robust accuracies are bounds as well.
    two = parse_standard(BASE.replace(
        'threat_model: {norm: linf, eps: ["8/255", 0.1]}',
        'threat_model: [{norm: linf, eps: ["8/255"]}, {norm: l2, eps: ["0.5"]}]').replace(
        "robust_accuracy@8/255", "l2.robust_accuracy@0.5"))
    checks = _checks("inconclusive", robust=None)
    checks["adversarial"].metrics["l2.robust_accuracy@0.5"] = 0.2
    assert evaluate(two, checks)[1] == FAIL


def test_a_lower_bound_that_misses_is_a_sound_fail():
    """Certified accuracy only under-states the truth: meeting a ">=" threshold on an
    inconclusive check does not pass. The confidence a fooling search reached only
    under-states the worst case: exceeding a "<=" bound fails even on an inconclusive check."""
    doc = BASE.replace("adversarial.robust_accuracy@8/255", "certified.certified_accuracy@8/255")
    checks = {"clean": CheckResult("clean", metrics={"accuracy": 0.95}),
              "certified": CheckResult("certified", status="inconclusive", reason="timeout",
                                       metrics={"certified_accuracy@8/255": 0.7},
                                       details={"lower_bounds": ["certified_accuracy@*"]})}
    results, verdict, _ = evaluate(parse_standard(doc), checks)
    assert results[1].result == INCONCLUSIVE and verdict == INCONCLUSIVE  # 0.7 >= 0.5
    at_most = parse_standard(BASE.replace(
        'adversarial.robust_accuracy@8/255, op: ">=", threshold: 0.5',
        'ood.adversarial.max_confidence, op: "<=", threshold: 0.5'))
    checks["ood"] = CheckResult("ood", status="inconclusive", reason="partial",
                                metrics={"adversarial.max_confidence": 0.7},
                                details={"lower_bounds": ["adversarial.max_confidence"]})
    results, verdict, reasons = evaluate(at_most, checks)
    assert results[1].result == FAIL and verdict == FAIL and "lower bound" in reasons[0]
    assert results[1].margin == pytest.approx(-0.2)


def test_not_obtained_reasons_replace_the_generic_one():
    std = parse_standard(BASE.replace("severity: advisory", "severity: required").replace(
        "ood.uniform_noise.auroc.msp", "ood.adversarial.auroc.energy"))
    ood = CheckResult("ood", metrics={"uniform_noise.auroc.msp": 0.9}, details={
        "not_obtained": {"*.energy": "logits unavailable (Softmax head)",
                         "adversarial.*": "white-box search not run: no torch module"}})
    checks = _checks() | {"ood": ood}
    results, verdict, reasons = evaluate(std, checks)
    assert verdict == INCONCLUSIVE and results[2].value is None
    # The most specific pattern wins ("adversarial.*" is longer than "*.energy").
    assert results[2].reason.endswith("was not obtained: white-box search not run: no torch "
                                      "module")
    ood.details["not_obtained"] = {"uniform_noise.aupr.msp": "no such"}
    assert "not produced by this run" in evaluate(std, checks)[0][2].reason
