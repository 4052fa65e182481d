"""The scorecard's JSON Schema and the renderings, on a real scorecard and on odd ones."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from tests.test_report_cli import certified_run
from verifiers.report import (
    render_badge,
    render_html,
    render_junit,
    render_markdown,
    render_summary,
)
from verifiers.schema import scorecard_schema
from verifiers.scorecard import SCHEMA_VERSION

SVG_NS = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def card() -> dict:
    return copy.deepcopy(certified_run().card)


def _validator() -> jsonschema.Draft202012Validator:
    schema = scorecard_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_real_scorecard_validates_against_the_published_schema(card):
    assert scorecard_schema()["x-schema-version"] == SCHEMA_VERSION == card["schema_version"]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator().iter_errors(card)]
    assert errors == []


@pytest.mark.parametrize("path, value, why", [
    (("verdict",), "MAYBE", "verdict outside PASS/FAIL/INCONCLUSIVE"),
    (("model", "sha256"), "abc", "not a sha256"),
    (("checks", "clean", "status"), "fine", "unknown check status"),
    (("metrics", "clean.accuracy"), "high", "a metric that is not a number"),
    (("criteria", 0, "result"), "PASS", "PASS on a value never obtained"),
    (("seed",), -1, "negative seed"),
])
def test_schema_rejects_broken_scorecards(card, path, value, why):
    broken = copy.deepcopy(card)
    target = broken
    for key in path[:-1]:
        target = target[key]
    if why.startswith("PASS on"):
        target["value"] = None
    target[path[-1]] = value
    assert list(_validator().iter_errors(broken)), why
    missing = copy.deepcopy(card)
    del missing["dataset"]
    assert list(_validator().iter_errors(missing))


def test_html_is_self_contained_and_shows_criteria_plots_and_hashes(card):
    html = render_html(card)
    # Nothing to fetch: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {SVG_NS}
    assert "<script" not in html and "<link" not in html and "@import" not in html
    plots = re.findall(r'data-plot="([^"]+)"', html)
    assert {"robust-accuracy", "ood-confidence", "reliability-diagram"} <= set(plots)
    # Clean vs attacked vs certified appears exactly when the bound engine reported.
    certified = any(k.startswith("certified_accuracy@")
                    for k in card["checks"].get("certified", {}).get("metrics", {}))
    assert ("certified-vs-attacked" in plots) == certified
    assert html.count("<tr data-result=") == len(card["criteria"])
    for c in card["criteria"]:
        assert c["metric"] in html
    for digest in (card["model"]["sha256"], card["dataset"]["sha256"],
                   card["standard"]["sha256"]):
        assert digest in html
    assert card["tool"]["version"] in html
    # The robust-accuracy curve has a point per eps, plus clean accuracy at eps 0.
    curve = re.search(r'data-series="worst case" points="([^"]+)"', html).group(1)
    assert len(curve.split()) == len(card["checks"]["adversarial"]["details"]["curves"]["linf"]) + 1
    assert render_html(card) == html  # deterministic: no clock in the output


def test_every_svg_is_well_formed_xml(card):
    html = render_html(card)
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(svgs) >= 3
    for svg in svgs + [render_badge(card)]:
        root = ET.fromstring(svg)
        assert root.tag == f"{{{SVG_NS}}}svg"


def test_markdown_fits_a_pull_request_comment(card):
    md = render_markdown(card, report_url="https://ci.example/report.html")
    rows = [line for line in md.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(card["criteria"])
    assert len(md) < 65536 and "https://ci.example/report.html" in md
    assert card["model"]["sha256"] in md


def test_renderers_survive_minimal_odd_and_future_scorecards(card):
    minimal = {"verdict": "INCONCLUSIVE", "criteria": [], "standard": {"name": "x"}}
    for render in (render_html, render_markdown, render_badge, render_junit):
        assert render(minimal)
    odd = copy.deepcopy(card)
    odd["checks"]["adversarial"]["details"]["curves"] = {"linf": "not a list"}
    odd["checks"]["calibration"]["details"]["reliability_diagram"] = [{"lower": "?"}]
    odd["checks"]["ood"]["details"]["suites"] = None
    odd["checks"]["future"] = {"status": "ok", "reason": "", "metrics": {"x": 1.0},
                               "details": {}, "seconds": 0.1}
    html = render_html(odd)
    assert 'data-check="future"' in html and 'data-plot="reliability-diagram"' not in html
    assert f"VERDICT: {card['verdict']}\n" in render_summary(card)


def test_certified_comparison_and_histograms_appear_when_their_data_does(card):
    bare = copy.deepcopy(card)
    bare["checks"].pop("certified", None)
    assert 'data-plot="certified-vs-attacked"' not in render_html(bare)
    richer = copy.deepcopy(card)
    richer["checks"]["certified"] = {
        "status": "ok", "reason": "", "seconds": 1.0, "details": {},
        "metrics": {"certified_accuracy@0.05": 0.7, "certified_accuracy@0.1": 0.4,
                    "certified_accuracy@0.2": 0.05}}
    edges = [i / 10 for i in range(11)]
    ood = richer["checks"]["ood"]["details"]
    ood["in_distribution"]["confidence_histogram"] = {"edges": edges, "counts": [0] * 9 + [40]}
    for suite in ood["suites"].values():
        suite["confidence_histogram"] = {"edges": edges, "counts": [5] * 10}
    html = render_html(richer)
    plots = re.findall(r'data-plot="([^"]+)"', html)
    assert "certified-vs-attacked" in plots and "ood-histograms" in plots
    # The tiles are the criteria: the certified accuracy a criterion names, with its result.
    assert re.search(r'class="tile advisory"[^>]*data-result="PASS"[^>]*>.{0,200}'
                     r"certified\.certified_accuracy@0\.1", html)
