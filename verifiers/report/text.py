"""A plain-text summary for terminals and CI logs."""

from __future__ import annotations

from typing import Any

from verifiers.report.access import fmt_interval


def render_summary(card: dict[str, Any]) -> str:
    std = card["standard"]
    lines = [
        f"standard  {std['name']} v{std['version']} ({std['sha256'][:12]})",
        f"model     {card['model']['sha256'][:12]}  dataset {card['dataset']['sha256'][:12]} "
        f"({card['dataset']['n_samples']} samples)",
        "",
        f"{'criterion':<48} {'value':>10} {'threshold':>12} {'margin':>10}  result",
    ]
    required = [c for c in card["criteria"] if c["severity"] == "required"]
    advisory = [c for c in card["criteria"] if c["severity"] != "required"]
    for title, group in (("REQUIRED (decide the verdict)", required),
                         ("advisory (reported, do not decide the verdict)", advisory)):
        if not group:
            continue
        lines.append(f"-- {title}")
        for c in group:
            value = "-" if c["value"] is None else f"{c['value']:.4g}"
            margin = "-" if c["margin"] is None else f"{c['margin']:+.4g}"
            bound = f"{c['op']} {c['threshold']:g}"
            # Advisory results in lower case, marked: only a required FAIL reads as one.
            result = c["result"] if c["severity"] == "required" \
                else f"({c['result'].lower()}, advisory)"
            lines.append(f"{c['metric']:<48} {value:>10} {bound:>12} {margin:>10}  {result}")
            if interval := fmt_interval(c):
                lines.append(f"    interval: {interval}")
            if c["result"] == "INCONCLUSIVE":
                lines.append(f"    reason: {c['reason']}")
    lines += ["", f"VERDICT: {card['verdict']}"]
    lines += [f"  - {r}" for r in card.get("verdict_reasons", [])]
    return "\n".join(lines) + "\n"
