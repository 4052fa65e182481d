"""Renderings of a scorecard: HTML report, Markdown summary, JUnit XML, SVG badge, text.

Every renderer reads the scorecard defensively: it shows the checks, metrics and plots that
are present and skips what is not, so older and newer scorecards render alike.
"""

from verifiers.report.badge import render_badge
from verifiers.report.bundle import render, write_reports
from verifiers.report.html import render_html
from verifiers.report.junit import render_junit
from verifiers.report.markdown import render_markdown
from verifiers.report.text import render_summary

__all__ = ["render", "render_badge", "render_html", "render_junit", "render_markdown",
           "render_summary", "write_reports"]
