"""The HTML report: one self-contained page (inline CSS, SVG and PNG data, no script, nothing
fetched).

Verdict banner, headline figures, the per-criterion table (value, threshold, margin, result),
the plots whose data the scorecard holds, every check with its metrics and what could not be
obtained, and the provenance (hashes, tool version, seed, hardware, signature).
Same scorecard (and certificate) in, same bytes out: no clock is read here.
"""

from __future__ import annotations

from html import escape
from typing import Any

from verifiers.report.access import (
    check_metrics,
    dig,
    fmt,
    fmt_interval,
    fmt_margin,
    number,
    short,
)
from verifiers.report.breakdown import describe, grouped_metrics, per_class, value_text
from verifiers.report.gallery import CSS as GALLERY_CSS
from verifiers.report.gallery import gallery
from verifiers.report.heatmaps import explanation_maps
from verifiers.report.plots import figures
from verifiers.report.style import CSS, verdict_colors

_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
_STATUS = {"ok": "PASS", "inconclusive": "INCONCLUSIVE", "error": "FAIL"}


def _pill(label: str, colour_key: str | None = None, severity: str = "required") -> str:
    """A result: filled for what decides the verdict, outlined for advisory results."""
    strong, light = verdict_colors(colour_key or label)
    if severity != "required":
        return (f'<span class="pill outline" data-severity="advisory" style="color:{strong};'
                f'border-color:{strong}">{escape(label)}</span>')
    return (f'<span class="pill" style="color:{strong};background:{light}">'
            f"{escape(label)}</span>")


def render_html(card: dict[str, Any], certificate: dict[str, Any] | None = None) -> str:
    std = card.get("standard") or {}
    verdict = str(card.get("verdict", "UNKNOWN"))
    title = (f"Robustgate {verdict}: {std.get('name', '?')} v{std.get('version', '?')}, "
             f"model {short(dig(card, 'model', 'sha256'))}")
    body = render_body(card, certificate)
    tool = dig(card, "tool", "version") or "?"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}{GALLERY_CSS}</style></head><body><main>{body}"
            f"<footer>robustgate {escape(str(tool))} · scorecard schema "
            f"{escape(str(card.get('schema_version', '?')))}</footer></main></body></html>\n")


def render_body(card: dict[str, Any], certificate: dict[str, Any] | None = None) -> str:
    """The report's sections without the page around them (the dashboard embeds them; the
    page needs :data:`verifiers.report.style.CSS` and the gallery's CSS)."""
    return "".join((_banner(card), _tiles(card), _criteria(card), _figures(card),
                    gallery(card), per_class(card), explanation_maps(card), _checks(card),
                    _provenance(card, certificate)))


def _banner(card: dict[str, Any]) -> str:
    verdict = str(card.get("verdict", "UNKNOWN"))
    strong, light = verdict_colors(verdict)
    std = card.get("standard") or {}
    data = card.get("dataset") or {}
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in card.get("verdict_reasons") or [])
    return (f'<header class="banner" style="border-color:{strong};background:{light}" '
            f'data-verdict="{escape(verdict)}"><div class="verdict" style="background:{strong}">'
            f'{escape(verdict)}</div><div><h1>Robustness certification</h1>'
            f'<p class="subtitle">standard <b>{escape(str(std.get("name", "?")))}</b> '
            f'v{escape(str(std.get("version", "?")))} · model '
            f'<code>{escape(short(dig(card, "model", "sha256"), 16))}</code> · '
            f'{escape(fmt(data.get("n_samples")))} evaluation samples · seed '
            f'{escape(fmt(card.get("seed")))}</p><ul class="reasons">{reasons}</ul></div>'
            f"</header>")


def _tiles(card: dict[str, Any]) -> str:
    """The figures the standard judges: one tile per criterion (required first, advisory ones
    smaller and outlined), each with its threshold and result; not figures picked elsewhere."""
    criteria = [c for c in card.get("criteria") or [] if isinstance(c, dict)]
    if not criteria:
        return ""
    required = [c for c in criteria if c.get("severity") == "required"]
    advisory = [c for c in criteria if c.get("severity") != "required"]
    passed = sum(1 for c in required if c.get("result") == "PASS")
    verdict = str(card.get("verdict", "?"))
    strong, _ = verdict_colors(verdict)
    summary = (f'<div class="tile summary" style="border-left-color:{strong}">'
               f'<div class="label">required criteria passed</div>'
               f'<div class="value">{passed} / {len(required)}</div>'
               f'<div class="note">decide the verdict: {escape(verdict)}</div></div>')
    shown_adv = advisory[:max(0, 8 - len(required))]
    rest = len(advisory) - len(shown_adv)
    tiles = [summary] + [_tile(c) for c in required]
    tiles += [_tile(c) for c in shown_adv]
    note = (f'<p class="reason tiles-note">{rest} more advisory criteria in the table below.'
            "</p>" if rest else "")
    return f'<section class="tiles">{"".join(tiles)}</section>{note}'


def _tile(c: dict[str, Any]) -> str:
    result = str(c.get("result", "?"))
    severity = "required" if c.get("severity") == "required" else "advisory"
    strong, light = verdict_colors(result)
    path = str(c.get("metric"))
    op = _OPS.get(str(c.get("op")), str(c.get("op")))
    style = (f"border-left-color:{strong}" if severity == "required"
             else f"border-color:{strong}")
    return (f'<div class="tile {severity}" data-severity="{severity}" '
            f'data-result="{escape(result)}" style="{style}">'
            f'<div class="label" title="{escape(describe(path))}"><code>{escape(path)}</code>'
            f"</div><div class=\"value\">{escape(value_text(path, c.get('value')))}</div>"
            f'<div class="note">{escape(op)} {escape(value_text(path, c.get("threshold")))} · '
            f"{_pill(result, severity=severity)}"
            f'{"" if severity == "required" else " <span class=advisory>advisory</span>"}'
            f"</div></div>")


def _interval(criterion: dict[str, Any]) -> str:
    text = fmt_interval(criterion)
    return f'<div class="reason interval">{escape(text)}</div>' if text else ""


def _criteria(card: dict[str, Any]) -> str:
    criteria = [c for c in card.get("criteria") or [] if isinstance(c, dict)]
    groups = (("required", "Required: these decide the verdict",
               [c for c in criteria if c.get("severity") == "required"]),
              ("advisory", "Advisory: reported, they do not decide the verdict",
               [c for c in criteria if c.get("severity") != "required"]))
    bodies = []
    for severity, title, rows in groups:
        if not rows:
            continue
        cells = "".join(
            f'<tr data-result="{escape(str(c.get("result", "?")))}" '
            f'data-severity="{severity}" class="{severity}"><td><code>'
            f'{escape(str(c.get("metric")))}</code>'
            f'<div class="reason">{escape(str(c.get("reason", "")))}</div></td>'
            f'<td class="num">{escape(fmt(c.get("value")))}{_interval(c)}</td>'
            f'<td class="num">{escape(_OPS.get(str(c.get("op")), str(c.get("op"))))} '
            f'{escape(fmt(c.get("threshold")))}</td>'
            f'<td class="num">{escape(fmt_margin(c.get("margin")))}</td>'
            f'<td>{_pill(str(c.get("result", "?")), severity=severity)}</td></tr>'
            for c in rows)
        bodies.append(f'<tbody class="{severity}"><tr class="group"><th colspan="5">'
                      f"{escape(title)}</th></tr>{cells}</tbody>")
    return ('<section id="criteria"><h2>Criteria of the standard</h2><table><thead><tr>'
            '<th>metric</th><th class="num">value</th><th class="num">threshold</th>'
            '<th class="num">margin</th><th>result</th></tr></thead>'
            f'{"".join(bodies)}</table></section>')


def _figures(card: dict[str, Any]) -> str:
    found = figures(card)
    if not found:
        return ""
    items = "".join(f'<figure id="fig-{escape(f.key)}"><h3>{escape(f.title)}</h3>{f.svg}'
                    f"<figcaption>{escape(f.caption)}</figcaption></figure>" for f in found)
    return f'<section id="figures"><h2>Figures</h2><div class="figures">{items}</div></section>'


def _checks(card: dict[str, Any]) -> str:
    checks = card.get("checks")
    if not isinstance(checks, dict) or not checks:
        return ""
    parts = []
    for name, chk in checks.items():
        if not isinstance(chk, dict):
            continue
        status = str(chk.get("status", "?"))
        reason = chk.get("reason") or ""
        found = check_metrics(card, name)
        metrics = grouped_metrics(found)
        missing = _missing(chk.get("details"))
        parts.append(
            f'<details class="check" data-check="{escape(str(name))}"><summary>'
            f"<h3>{escape(str(name))}</h3>{_pill(status, _STATUS.get(status))}"
            f'<span class="reason">{len(found)} metrics · '
            f'{escape(fmt(number(chk.get("seconds")), 3))} s'
            f'{" · " + escape(str(reason)) if reason else ""}</span></summary>'
            f'{missing}{metrics}</details>')
    return ('<section id="checks"><h2>Checks</h2><p class="reason">Every metric each check '
            "produced, grouped (expand a check, then a group). A metric that could not be "
            f'obtained is absent, with its reason.</p>{"".join(parts)}</section>')


def _missing(details: Any) -> str:
    if not isinstance(details, dict):
        return ""
    rows = []
    for key in ("not_obtained", "skipped"):
        entries = details.get(key)
        if isinstance(entries, dict):
            rows += [f"<li><code>{escape(str(k))}</code>: {escape(str(v))}</li>"
                     for k, v in entries.items()]
    return f'<p class="reason">Not obtained:</p><ul class="reason">{"".join(rows)}</ul>' \
        if rows else ""


def _provenance(card: dict[str, Any], certificate: dict[str, Any] | None) -> str:
    std = card.get("standard") or {}
    tool = card.get("tool") or {}
    hw = card.get("hardware") or {}
    facts = [
        ("model sha256", f"<code>{escape(str(dig(card, 'model', 'sha256')))}</code>"),
        ("dataset sha256", f"<code>{escape(str(dig(card, 'dataset', 'sha256')))}</code>"),
        ("standard", f"{escape(str(std.get('name')))} v{escape(str(std.get('version')))} "
                     f"<code>{escape(str(std.get('sha256')))}</code>"),
        ("tool", f"{escape(str(tool.get('name', 'robustgate')))} "
                 f"{escape(str(tool.get('version')))}"
                 + (f" (git {escape(str(tool['git_revision']))})"
                    if tool.get("git_revision") else "")),
        ("seed", escape(fmt(card.get("seed")))),
        ("hardware", escape(", ".join(f"{k} {v}" for k, v in hw.items()))),
        ("input range", escape(str(dig(card, "dataset", "input_range")))),
        ("total time", f"{escape(fmt(number(dig(card, 'timings', 'total_seconds')), 4))} s"),
    ]
    if certificate:
        facts += [("signed", f"{escape(str(certificate.get('algorithm')))} key "
                             f"<code>{escape(str(certificate.get('key_id')))}</code> at "
                             f"{escape(str(certificate.get('signed_at')))}"),
                  ("certification", f"<code>{escape(str(certificate.get('certification_id')))}"
                                    "</code>")]
    else:
        facts.append(("signed", "not signed (in-process run)"))
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<section id="provenance"><h2>Provenance</h2><dl class="facts">{rows}</dl></section>'
