"""A Markdown summary sized for a pull-request comment (GitHub / GitLab flavoured)."""

from __future__ import annotations

from typing import Any

from verifiers.reasons import join_reasons
from verifiers.report.access import dig, fmt, fmt_interval, fmt_margin, number, short
from verifiers.report.breakdown import value_text

_ICON = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}
_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
# GitHub refuses comments over 65,536 characters; stay well below it.
MAX_CHARS = 60_000


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval(criterion: dict[str, Any]) -> str:
    text = fmt_interval(criterion)
    return f" <sub>{_cell(text)}</sub>" if text else ""


MARKER = "<!-- robustgate:report -->"
# Advisory results get their own marks: only a required FAIL is a red cross.
_ADVISORY_ICON = {"PASS": "☑️", "FAIL": "🔸", "INCONCLUSIVE": "❔"}


def _value(path: Any, value: Any) -> str:
    return value_text(str(path), value)


def _rows(criteria: list[dict[str, Any]], icons: dict[str, str]) -> list[str]:
    lines = ["| | criterion | value | threshold | margin | result |",
             "|---|---|--:|--:|--:|---|"]
    for c in criteria:
        result = str(c.get("result", "?"))
        lines.append(
            f"| {icons.get(result, '❔')} | `{_cell(c.get('metric'))}` "
            f"| {fmt(c.get('value'))}{_interval(c)} "
            f"| {_OPS.get(str(c.get('op')), _cell(c.get('op')))} "
            f"{fmt(c.get('threshold'))} | {fmt_margin(c.get('margin'))} | {result} |")
    return lines


def render_markdown(card: dict[str, Any], certificate: dict[str, Any] | None = None,
                    report_url: str | None = None) -> str:
    """A PR comment. It starts with :data:`MARKER` so a CI job finds and updates its one
    sticky comment instead of adding another on every push."""
    verdict = str(card.get("verdict", "UNKNOWN"))
    std = card.get("standard") or {}
    criteria = [c for c in card.get("criteria") or [] if isinstance(c, dict)]
    required = [c for c in criteria if c.get("severity") == "required"]
    advisory = [c for c in criteria if c.get("severity") != "required"]
    lines = [MARKER,
             f"### {_ICON.get(verdict, '❔')} Robustgate: **{verdict}** against "
             f"`{_cell(std.get('name', '?'))}` v{_cell(std.get('version', '?'))}", ""]
    if report_url:
        lines += [f"[Full report]({report_url})", ""]
    # The headline: the figures the standard judges (its required criteria), with results.
    headline = [f"{_ICON.get(str(c.get('result')), '❔')} `{_cell(c.get('metric'))}` "
                f"**{_value(c.get('metric'), c.get('value'))}**" for c in required]
    if headline:
        passed = sum(1 for c in required if c.get("result") == "PASS")
        lines += [f"Required criteria passed: **{passed} / {len(required)}** · "
                  + " · ".join(headline), ""]
    if required:
        lines += ["**Required** (decide the verdict)", ""] + _rows(required, _ICON)
    if advisory:
        lines += ["", "**Advisory** (reported; they do not decide the verdict)", ""]
        lines += _rows(advisory, _ADVISORY_ICON)
    reasons = card.get("verdict_reasons") or []
    if reasons:
        lines += ["", "**Why:** " + join_reasons(_cell(r) for r in reasons)]
    skipped = [f"`{_cell(name)}` {_cell(chk.get('status'))}: {_cell(chk.get('reason'))}"
               for name, chk in (card.get("checks") or {}).items()
               if isinstance(chk, dict) and chk.get("status") not in (None, "ok")]
    if skipped:
        lines += ["", "**Checks without full evidence:** " + join_reasons(skipped)]
    lines += ["", "<details><summary>Run details</summary>", "",
              f"- model `{_cell(dig(card, 'model', 'sha256'))}`",
              f"- dataset `{_cell(dig(card, 'dataset', 'sha256'))}` "
              f"({fmt(dig(card, 'dataset', 'n_samples'))} samples)",
              f"- standard `{_cell(std.get('name'))}` v{_cell(std.get('version'))} "
              f"`{short(std.get('sha256'), 16)}`",
              f"- robustgate {_cell(dig(card, 'tool', 'version'))}, seed "
              f"{fmt(card.get('seed'))}, device {_cell(dig(card, 'hardware', 'device'))}, "
              f"{fmt(number(dig(card, 'timings', 'total_seconds')), 4)} s"]
    if certificate:
        lines.append(f"- signed ({_cell(certificate.get('algorithm'))}) by key "
                     f"`{short(certificate.get('key_id'), 16)}` at "
                     f"{_cell(certificate.get('signed_at'))}; check with `robustgate "
                     f"verify-certificate certificate.json --model MODEL.onnx`")
    if report_url:
        lines.append(f"- full report: {report_url}")
    lines += ["", "</details>", ""]
    text = "\n".join(lines)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + "\n\n_(truncated)_\n"
    return text
