"""The dashboard's comparison of two certifications (model v1 vs v2 under one standard):
criteria side by side, the robust-accuracy curves overlaid, every metric with its change,
coloured by the catalogue's direction (green: better, red: worse)."""

from __future__ import annotations

from html import escape
from typing import Any

from verifiers import catalogue
from verifiers.report.access import fmt, number
from verifiers.report.breakdown import split_groups, value_text
from verifiers.report.style import verdict_colors
from verifiers.report.svg import INK, PALETTE, Axes, percent


def _direction(path: str) -> str:
    try:
        return catalogue.lookup(path).spec.direction
    except Exception:
        return "none"


def _delta(path: str, a: Any, b: Any) -> tuple[str, str]:
    va, vb = number(a), number(b)
    if va is None or vb is None:
        return ("changed" if a != b else ""), ""
    d = vb - va
    if d == 0:
        return "", "0"
    direction = _direction(path)
    better = (d > 0) == (direction == "higher")
    css = "" if direction == "none" else "delta-better" if better else "delta-worse"
    return css, f"{d:+.4g}"


def _pill(result: Any, severity: str = "required") -> str:
    strong, light = verdict_colors(result)
    if severity != "required":  # advisory: outlined, as in the reports
        return (f'<span class="pill outline" style="color:{strong};border-color:{strong}">'
                f"{escape(str(result or '-'))}</span>")
    return (f'<span class="pill" style="color:{strong};background:{light}">'
            f"{escape(str(result or '-'))}</span>")


def _curves(cards: list[dict[str, Any]], labels: list[str]) -> str:
    series = []
    for card in cards:
        details = ((card.get("checks") or {}).get("adversarial") or {}).get("details") or {}
        curves = details.get("curves") or {}
        norm = next(iter(curves), None)
        points = [(float(p["eps"]), float(p["robust_accuracy"])) for p in curves.get(norm) or []
                  if number(p.get("eps")) is not None and number(p.get("robust_accuracy"))
                  is not None]
        clean = number((card.get("metrics") or {}).get("clean.accuracy"))
        series.append(([(0.0, clean)] if clean is not None else []) + sorted(points))
    if not all(series):
        return ""
    x_max = max(x for s in series for x, _ in s) * 1.08 or 1.0
    ax = Axes("compare-robust-accuracy", "Robust accuracy vs eps, both certifications",
              (0.0, x_max), (0.0, 1.0))
    ticks = sorted({x for s in series for x, _ in s})
    ax.frame([(t, f"{t:g}") for t in ticks], [(t, percent(t)) for t in
                                              (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)],
             "perturbation radius eps", "robust accuracy")
    colors = (INK, PALETTE[0])
    for s, color, label in zip(series, colors, labels, strict=True):
        ax.line(s, color, width=2.5, dashed=color != INK, name=label)
    ax.legend([(label, color, color != INK) for label, color in zip(labels, colors,
                                                                     strict=True)])
    return (f'<figure id="fig-compare"><h3>Robust accuracy vs eps (worst case)</h3>'
            f"{ax.svg()}</figure>")


def compare_page(jobs: list[dict[str, Any]], cards: list[dict[str, Any]]) -> str:
    a, b = cards
    labels = [f"{side} {j['id'][:8]} · {j['model']['filename']}"
              for side, j in zip("AB", jobs, strict=True)]
    heads = "".join(
        f'<th class="num">{escape(lbl)}<br>{_pill(c.get("verdict"))}</th>'
        for lbl, c in zip(labels, cards, strict=True))
    same = (a.get("standard") or {}).get("sha256") == (b.get("standard") or {}).get("sha256")
    warn = "" if same else (
        '<p class="error" id="different-standards">The two were judged against different '
        "standards (or versions): criteria are matched by metric and threshold.</p>")
    # Criteria, matched by (metric, op, threshold, severity).
    keyed = [{(c["metric"], c["op"], c["threshold"], c["severity"]): c
              for c in card.get("criteria") or []} for card in cards]
    order = list(keyed[0]) + [k for k in keyed[1] if k not in keyed[0]]
    crit_rows = []
    for key in order:
        ca, cb = keyed[0].get(key), keyed[1].get(key)
        metric, op, threshold, severity = key
        css, delta = _delta(metric, (ca or {}).get("value"), (cb or {}).get("value"))
        changed = " changed" if (ca or {}).get("result") != (cb or {}).get("result") else ""
        sev = "" if severity == "required" else ' <span class="advisory">advisory</span>'
        crit_rows.append(
            f'<tr class="{severity}{changed}" data-metric="{escape(metric)}"><td><code>'
            f"{escape(metric)}</code>{sev}</td><td class=\"num\">{escape(op)} "
            f"{escape(fmt(threshold))}</td>"
            + "".join(f'<td class="num">{escape(value_text(metric, (c or {}).get("value")))} '
                      f'{_pill((c or {}).get("result"), severity)}</td>' for c in (ca, cb))
            + f'<td class="num {css}">{escape(delta)}</td></tr>')
    criteria = ('<section id="compare-criteria"><h2>Criteria</h2><table><thead><tr><th>metric'
                f'</th><th class="num">threshold</th>{heads}<th class="num">B − A</th></tr>'
                f"</thead><tbody>{''.join(crit_rows)}</tbody></table></section>")
    # Every metric, grouped like the report's checks.
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    names = list(ma) + [k for k in mb if k not in ma]
    by_check: dict[str, dict[str, Any]] = {}
    for path in names:
        check, _, rest = path.partition(".")
        by_check.setdefault(check, {})[rest] = path
    blocks = []
    for check, keys in by_check.items():
        groups = split_groups(keys)
        inner = []
        for group, items in groups.items():
            rows = []
            for _rest, path in items.items():
                css, delta = _delta(path, ma.get(path), mb.get(path))
                rows.append(f'<tr data-path="{escape(path)}"><td><code>{escape(path)}</code>'
                            f'</td><td class="num">{escape(fmt(ma.get(path)))}</td>'
                            f'<td class="num">{escape(fmt(mb.get(path)))}</td>'
                            f'<td class="num {css}">{escape(delta)}</td></tr>')
            inner.append(f'<details class="group"{" open" if not group else ""}><summary>'
                         f"{escape(group or 'summary')} <span class=\"reason\">({len(rows)})"
                         f"</span></summary><table class=\"matrix\"><thead><tr><th>metric</th>"
                         f'<th class="num">A</th><th class="num">B</th><th class="num">B − A'
                         f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>")
        blocks.append(f'<details class="check" data-check="{escape(check)}"><summary><h3>'
                      f"{escape(check)}</h3><span class=\"reason\">{len(keys)} metrics"
                      f"</span></summary>{''.join(inner)}</details>")
    links = " vs ".join(f'<a href="/ui/certifications/{escape(j["id"])}">{escape(lbl)}</a>'
                        for j, lbl in zip(jobs, labels, strict=True))
    curves = _curves(cards, labels)
    return (f'<section id="compare"><h1>Compare</h1><p>{links}</p>{warn}</section>{criteria}'
            + (f'<section id="compare-figures"><h2>Curves</h2>{curves}</section>'
               if curves else "")
            + '<section id="compare-metrics"><h2>Every metric</h2><p class="reason">Green: '
              "better for B by the catalogue's direction; red: worse.</p>"
            + "".join(blocks) + "</section>")
