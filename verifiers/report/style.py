"""Colours per verdict and the report's stylesheet (inlined: the page fetches nothing)."""

from __future__ import annotations

# (strong colour, light background) per result.
VERDICT_COLORS = {
    "PASS": ("#1a7f37", "#dafbe1"),
    "FAIL": ("#cf222e", "#ffebe9"),
    "INCONCLUSIVE": ("#9a6700", "#fff8c5"),
}
UNKNOWN_COLORS = ("#59636e", "#eaeef2")


def verdict_colors(verdict: object) -> tuple[str, str]:
    return VERDICT_COLORS.get(str(verdict), UNKNOWN_COLORS)


CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d8dee4; --panel:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
section, header.banner { background:#fff; border:1px solid var(--line); border-radius:10px;
  padding: 18px 22px; margin-bottom: 18px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 0; }
.banner { display:flex; gap:22px; align-items:center; border-left-width:10px !important; }
.verdict { font-size: 34px; font-weight: 800; letter-spacing: .04em; padding: 10px 22px;
  border-radius: 8px; color:#fff; white-space: nowrap; }
.subtitle { color: var(--muted); margin: 0; }
.reasons { margin: 8px 0 0; padding-left: 18px; }
.tiles { display:grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
  background: transparent; border: 0; padding: 0; }
.tile { background:#fff; border:1px solid var(--line); border-radius:10px; padding:12px 16px; }
.tile .label { color: var(--muted); font-size: 13px; }
.tile .value { font-size: 26px; font-weight: 700; }
.tile .note { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
.pill { display:inline-block; padding: 1px 9px; border-radius: 999px; font-weight: 700;
  font-size: 12px; letter-spacing: .03em; }
.advisory { color: var(--muted); font-size: 12px; }
.reason { color: var(--muted); font-size: 13px; }
.figures { display:grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
figure svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
figure h3 { margin-bottom: 8px; }
details.check { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0;
  padding: 8px 12px; }
details.check summary { cursor: pointer; display:flex; gap: 12px; align-items: center; }
details.check summary h3 { min-width: 120px; }
.metrics { display:grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
  column-gap: 24px; margin-top: 8px; }
.metrics div { display:flex; justify-content: space-between; gap: 12px;
  border-bottom: 1px dotted var(--line); padding: 3px 0; font-size: 13px; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px; }
@media print { body { background:#fff; } section { break-inside: avoid; } }
"""

CSS += """
.tile { border-left: 6px solid var(--line); }
.tile.summary .value { font-size: 30px; }
.tile.advisory { border: 1.5px dashed var(--line); background: #fbfcfd; }
.tile.advisory .value { font-size: 20px; color: var(--muted); }
.tile .label code { font-size: 12px; word-break: break-all; }
.tiles-note { margin: -8px 0 14px; }
.pill.outline { background: #fff; border: 1.5px dashed; }
tbody tr.group th { background: #fff; font-size: 13px; color: var(--muted); padding-top: 14px; }
tbody.advisory td { color: var(--muted); }
tbody.advisory td code { color: var(--muted); }
details.group { margin: 6px 0 6px 8px; }
details.group summary { cursor: pointer; font-weight: 600; font-size: 13.5px; }
.scroll { overflow-x: auto; }
table.matrix { font-size: 12.5px; width: auto; min-width: 50%; }
table.matrix th, table.matrix td { padding: 3px 8px; }
"""
CSS += """
.tile .value { overflow-wrap: anywhere; }
"""
