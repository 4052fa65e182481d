"""A Markdown summary sized for a pull-request comment (GitHub / GitLab flavoured)."""

from __future__ import annotations

from typing import Any

from verifiers.report.access import dig, fmt, fmt_interval, fmt_margin, metric, number, short

_ICON = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}
_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
# GitHub refuses comments over 65,536 characters; stay well below it.
MAX_CHARS = 60_000


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval(criterion: dict[str, Any]) -> str:
    text = fmt_interval(criterion)
    return f" <sub>{_cell(text)}</sub>" if text else ""


def render_markdown(card: dict[str, Any], certificate: dict[str, Any] | None = None,
                    report_url: str | None = None) -> str:
    verdict = str(card.get("verdict", "UNKNOWN"))
    std = card.get("standard") or {}
    lines = [f"### {_ICON.get(verdict, '❔')} Robustgate: **{verdict}** against "
             f"`{_cell(std.get('name', '?'))}` v{_cell(std.get('version', '?'))}", ""]
    headline = []
    clean = metric(card, "clean.accuracy")
    if clean is not None:
        headline.append(f"clean accuracy **{clean * 100:.1f}%**")
    eps = dig(card, "robustbench", "eps")
    robust = number(dig(card, "robustbench", "robust_acc"))
    if robust is not None:
        headline.append(f"robust accuracy @ eps {eps} **{robust * 100:.1f}%**")
    ece = metric(card, "calibration.ece")
    if ece is not None:
        headline.append(f"ECE {ece * 100:.2f}%")
    if headline:
        lines += [" · ".join(headline), ""]
    lines += ["| | criterion | value | threshold | margin | result |",
              "|---|---|--:|--:|--:|---|"]
    for c in card.get("criteria") or []:
        result = str(c.get("result", "?"))
        advisory = " _(advisory)_" if c.get("severity") != "required" else ""
        lines.append(
            f"| {_ICON.get(result, '❔')} | `{_cell(c.get('metric'))}`{advisory} "
            f"| {fmt(c.get('value'))}{_interval(c)} "
            f"| {_OPS.get(str(c.get('op')), _cell(c.get('op')))} "
            f"{fmt(c.get('threshold'))} | {fmt_margin(c.get('margin'))} | {result} |")
    reasons = card.get("verdict_reasons") or []
    if reasons:
        lines += ["", "**Why:** " + "; ".join(_cell(r) for r in reasons)]
    skipped = [f"`{_cell(name)}` {_cell(chk.get('status'))}: {_cell(chk.get('reason'))}"
               for name, chk in (card.get("checks") or {}).items()
               if isinstance(chk, dict) and chk.get("status") not in (None, "ok")]
    if skipped:
        lines += ["", "**Checks without full evidence:** " + "; ".join(skipped)]
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
