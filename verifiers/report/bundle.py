"""Write every rendering of one scorecard into a folder (``--report DIR``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from verifiers.examples import to_npz
from verifiers.report.badge import render_badge
from verifiers.report.html import render_html
from verifiers.report.junit import render_junit
from verifiers.report.markdown import render_markdown

# File name -> what it holds; the service serves the same four at report.{html,md,xml,svg}.
FILES = {
    "report.html": "self-contained HTML report",
    "report.md": "Markdown summary for a pull-request comment",
    "report.xml": "JUnit XML, one testcase per criterion",
    "report.svg": "status badge",
    "scorecard.json": "the scorecard",
    "certificate.json": "the signed certificate (service runs only)",
    "adversarial.npz": "the confirmed adversarial examples kept in the scorecard (when any)",
}


def render(card: dict[str, Any], fmt: str, certificate: dict[str, Any] | None = None) -> str:
    """One rendering by its extension: html, md, xml or svg."""
    if fmt == "html":
        return render_html(card, certificate)
    if fmt == "md":
        return render_markdown(card, certificate)
    if fmt == "xml":
        return render_junit(card)
    if fmt == "svg":
        return render_badge(card)
    raise ValueError(f"unknown report format {fmt!r} (html, md, xml, svg)")


def write_reports(folder: Path, card: dict[str, Any],
                  certificate: dict[str, Any] | None = None) -> list[Path]:
    """Write the four reports and the scorecard (and the certificate, when there is one, and
    ``adversarial.npz`` when the scorecard keeps adversarial examples)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("html", "md", "xml", "svg"):
        path = folder / f"report.{ext}"
        path.write_text(render(card, ext, certificate), encoding="utf-8")
        written.append(path)
    documents = {"scorecard.json": card}
    if certificate is not None:
        documents["certificate.json"] = certificate
    for name, doc in documents.items():
        path = folder / name
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    examples = to_npz(card)
    if examples is not None:
        path = folder / "adversarial.npz"
        path.write_bytes(examples)
        written.append(path)
    return written
