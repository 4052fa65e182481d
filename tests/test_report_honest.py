"""Issue #17: the reports show what the standard judges, tell required from advisory
everywhere, draw thresholds, group the numbers, and show which inputs broke the model."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import pytest

from tests.test_report_cli import certified_run
from verifiers.examples import decode, records
from verifiers.reasons import grouped, join_reasons
from verifiers.report import render_html, render_junit, render_markdown, render_summary
from verifiers.report.markdown import MARKER


@pytest.fixture(scope="module")
def card() -> dict:
    return copy.deepcopy(certified_run().card)


def test_tiles_are_the_criteria_with_their_results(card):
    html = render_html(card)
    tiles = re.findall(r'<div class="tile (required|advisory)" data-severity="\w+" '
                       r'data-result="(\w+)"[^>]*><div class="label"[^>]*><code>([^<]+)</code>',
                       html)
    judged = [(c["severity"], c["result"], c["metric"]) for c in card["criteria"]]
    assert sorted(tiles) == sorted(judged)            # each criterion once, nothing else
    assert "Worst OOD AUROC" not in html and "Required criteria passed" not in html
    assert re.search(r"required criteria passed</div><div class=\"value\">3 / 3", html)
    # An advisory FAIL is outlined, not the filled red of a required one.
    row = re.search(r'<tr data-result="FAIL" data-severity="advisory".*?</tr>', html).group(0)
    assert 'class="pill outline"' in row


def test_markdown_sticky_marker_link_and_advisory_marks(card):
    md = render_markdown(card, report_url="https://rg.example/ui/certifications/abc")
    assert md.startswith(MARKER + "\n")
    assert "[Full report](https://rg.example/ui/certifications/abc)" in md
    required, advisory = md.split("**Advisory**")
    assert "❌" not in advisory and "🔸 | `adversarial.robust_accuracy@0.2`" in advisory
    assert "`adversarial.robust_accuracy@0.2`" not in required
    failing = copy.deepcopy(card)
    failing["criteria"][0]["result"] = "FAIL"
    assert "❌ | `clean.accuracy`" in render_markdown(failing)


def test_junit_passing_cases_carry_their_values_and_severity(card):
    suite = ET.fromstring(render_junit(card)).find("testsuite")
    cases = suite.findall("testcase")
    passing = [c for c in cases if c.find("failure") is None and c.find("error") is None
               and c.find("skipped") is None]
    assert passing
    for case in passing:
        props = {p.get("name"): p.get("value") for p in case.find("properties")}
        assert {"metric", "value", "threshold", "margin", "result"} <= set(props)
        assert case.find("system-out").text.startswith("PASS")
    classes = {c.get("classname").rsplit(".", 1)[1] for c in cases}
    assert classes == {"required", "advisory"}


def test_terminal_table_separates_required_from_advisory(card):
    text = render_summary(card)
    head, tail = text.split("-- advisory")
    assert "-- REQUIRED" in head and "(fail, advisory)" in tail and " FAIL\n" not in tail


def test_one_cause_is_stated_once():
    cause = "white-box attacks not possible (torch conversion differs by 0.3)"
    assert grouped({k: cause for k in ("large_eps", "monotone", "budget", "blackbox")}) == \
        f"large_eps, monotone, budget, blackbox: {cause}"
    assert join_reasons([cause, "", cause, f"x; {cause}"]) == f"x; {cause}"


def test_plots_draw_thresholds_and_keep_legends_off_the_data(card):
    html = render_html(card)
    curve = re.search(r'<svg[^>]*data-plot="robust-accuracy".*?</svg>', html).group(0)
    # Criteria at 0.1 (required) and 0.2 (advisory), and the certified one at 0.1.
    assert len(re.findall(r'<g class="threshold"', curve)) == 3
    assert 'data-result="FAIL"' in curve
    # The legend sits in a band above the axes; the axes are shifted below it.
    legend = curve.index('<g class="legend">')
    assert curve.index('<g transform="translate(0 ') > legend


def test_checks_are_grouped_and_per_class_table_shown(card):
    html = render_html(card)
    ood = re.search(r'<details class="check" data-check="ood">.*?</details>\s*</details>', html,
                    re.S).group(0)
    assert 'data-group="uniform_noise"' in ood and "<table class=\"matrix\">" in ood
    assert 'data-breakdown="classes"' in html and html.count("<tr data-class=") == 10


def test_gallery_shows_the_kept_examples_as_images(card):
    html = render_html(card)
    sec = records(card)
    kept = sum(len(r.get("examples", [])) for r in sec["radii"])
    assert html.count('data-example="adversarial"') == kept > 0
    first = sec["radii"][0]["examples"][0]
    assert f'data-index="{first["index"]}"' in html
    x = decode(first["x_adv"], sec["sample_shape"])
    assert x.shape == (1, 8, 8) and first["adv_pred"] != first["label"]
