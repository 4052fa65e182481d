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
    metric,
    number,
    short,
)
from verifiers.report.heatmaps import explanation_maps
from verifiers.report.plots import figures
from verifiers.report.style import CSS, verdict_colors

_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
_STATUS = {"ok": "PASS", "inconclusive": "INCONCLUSIVE", "error": "FAIL"}


def _pill(label: str, colour_key: str | None = None) -> str:
    strong, light = verdict_colors(colour_key or label)
    return (f'<span class="pill" style="color:{strong};background:{light}">'
            f"{escape(label)}</span>")


def render_html(card: dict[str, Any], certificate: dict[str, Any] | None = None) -> str:
    std = card.get("standard") or {}
    verdict = str(card.get("verdict", "UNKNOWN"))
    title = (f"Robustgate {verdict}: {std.get('name', '?')} v{std.get('version', '?')}, "
             f"model {short(dig(card, 'model', 'sha256'))}")
    body = "".join((_banner(card), _tiles(card), _criteria(card), _figures(card),
                    explanation_maps(card), _checks(card), _provenance(card, certificate)))
    tool = dig(card, "tool", "version") or "?"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>robustgate {escape(str(tool))} · scorecard schema "
            f"{escape(str(card.get('schema_version', '?')))}</footer></main></body></html>\n")


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


def _tile(label: str, value: str, note: str = "") -> str:
    return (f'<div class="tile"><div class="label">{escape(label)}</div>'
            f'<div class="value">{escape(value)}</div><div class="note">{escape(note)}</div>'
            f"</div>")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _tiles(card: dict[str, Any]) -> str:
    tiles = []
    clean = metric(card, "clean.accuracy")
    if clean is not None:
        tiles.append(_tile("Clean accuracy", _pct(clean), "onnxruntime, original model"))
    eps = dig(card, "robustbench", "eps")
    robust = number(dig(card, "robustbench", "robust_acc"))
    if robust is None and eps is not None:
        robust = metric(card, f"adversarial.robust_accuracy@{eps}")
    if robust is not None:
        status = dig(card, "checks", "adversarial", "status")
        note = ("worst case over the attack battery" if status in (None, "ok")
                else f"check {status}: not evidence for a PASS")
        tiles.append(_tile(f"Robust accuracy @ eps {eps}", _pct(robust), note))
    certified = metric(card, f"certified.certified_accuracy@{eps}")
    if certified is not None:
        tiles.append(_tile(f"Certified accuracy @ eps {eps}", _pct(certified), "bound"))
    required = [c for c in card.get("criteria") or [] if c.get("severity") == "required"]
    if required:
        passed = sum(1 for c in required if c.get("result") == "PASS")
        tiles.append(_tile("Required criteria passed", f"{passed} / {len(required)}",
                           f"{len(card.get('criteria') or []) - len(required)} advisory"))
    ece = metric(card, "calibration.ece")
    if ece is not None:
        tiles.append(_tile("Calibration error (ECE)", _pct(ece), "15 bins, evaluation set"))
    auroc = metric(card, "ood.worst.auroc.msp")
    if auroc is not None:
        tiles.append(_tile("Worst OOD AUROC (MSP)", f"{auroc:.3f}", "over the synthetic suites"))
    return f'<section class="tiles">{"".join(tiles)}</section>' if tiles else ""


def _interval(criterion: dict[str, Any]) -> str:
    text = fmt_interval(criterion)
    return f'<div class="reason interval">{escape(text)}</div>' if text else ""


def _criteria(card: dict[str, Any]) -> str:
    rows = []
    for c in card.get("criteria") or []:
        result = str(c.get("result", "?"))
        sev = "" if c.get("severity") == "required" else ' <span class="advisory">advisory</span>'
        rows.append(
            f'<tr data-result="{escape(result)}"><td><code>{escape(str(c.get("metric")))}</code>'
            f'{sev}<div class="reason">{escape(str(c.get("reason", "")))}</div></td>'
            f'<td class="num">{escape(fmt(c.get("value")))}{_interval(c)}</td>'
            f'<td class="num">{escape(_OPS.get(str(c.get("op")), str(c.get("op"))))} '
            f'{escape(fmt(c.get("threshold")))}</td>'
            f'<td class="num">{escape(fmt_margin(c.get("margin")))}</td>'
            f"<td>{_pill(result)}</td></tr>")
    return ('<section id="criteria"><h2>Criteria of the standard</h2><table><thead><tr>'
            '<th>metric</th><th class="num">value</th><th class="num">threshold</th>'
            '<th class="num">margin</th><th>result</th></tr></thead><tbody>'
            f'{"".join(rows)}</tbody></table></section>')


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
        metrics = "".join(f"<div><span class=\"mono\">{escape(str(k))}</span>"
                          f"<span class=\"mono\">{escape(fmt(v))}</span></div>"
                          for k, v in check_metrics(card, name).items())
        missing = _missing(chk.get("details"))
        parts.append(
            f'<details class="check" data-check="{escape(str(name))}"><summary>'
            f"<h3>{escape(str(name))}</h3>{_pill(status, _STATUS.get(status))}"
            f'<span class="reason">{escape(fmt(number(chk.get("seconds")), 3))} s'
            f'{" · " + escape(str(reason)) if reason else ""}</span></summary>'
            f'{missing}<div class="metrics">{metrics}</div></details>')
    return ('<section id="checks"><h2>Checks</h2><p class="reason">Every metric each check '
            "produced (expand a check). A metric that could not be obtained is absent, with "
            f'its reason.</p>{"".join(parts)}</section>')


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
