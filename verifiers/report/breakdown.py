"""Readable views of many numbers: a check's metrics grouped, per-class and per-group tables,
values in the unit the catalogue declares (fractions of samples as percentages)."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from verifiers import catalogue
from verifiers.report.access import dig, fmt, number

_PERCENT_KEY = re.compile(r"(accuracy|_rate|\.ece$|\.mce$|abstain)", re.IGNORECASE)


def describe(path: str) -> str:
    try:
        return catalogue.lookup(path).spec.description
    except Exception:  # unknown or malformed path: the path says it itself
        return path


def is_percent(path: str) -> bool:
    """Accuracies, rates and calibration errors read as percentages; AUROC, distances and
    counts do not."""
    try:
        unit = catalogue.lookup(path).spec.unit
    except Exception:
        unit = "fraction"
    return unit == "fraction" and bool(_PERCENT_KEY.search(path.split("@")[0]))


def value_text(path: str, value: Any) -> str:
    v = number(value)
    if v is None:
        return "not obtained" if value is None else str(value)
    if is_percent(path) and 0.0 <= v <= 1.0:
        return f"{v * 100:.1f}%"
    return fmt(v, 4)


def _parts(key: str) -> list[str]:
    """``a.b.c@0.1`` -> [a, b, c@0.1] (the dots of a radius do not split)."""
    base, at, eps = key.partition("@")
    parts = base.split(".")
    parts[-1] += at + eps
    return parts


def split_groups(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{group -> {rest of the key -> value}}; groups of fewer than 3 go to "" with full keys."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        parts = _parts(str(key))
        head, rest = (parts[0], ".".join(parts[1:])) if len(parts) > 1 else ("", str(key))
        groups.setdefault(head, {})[rest] = value
    out: dict[str, dict[str, Any]] = {"": dict(groups.pop("", {}))}
    for head, items in groups.items():
        if len(items) < 3:
            out[""].update({f"{head}.{k}": v for k, v in items.items()})
        else:
            out[head] = items
    return {k: v for k, v in out.items() if v}


def _matrix(items: dict[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], Any],
                                             dict[str, Any]]:
    singles, cells, rows, cols = {}, {}, [], []
    for key, value in items.items():
        parts = _parts(key)
        if len(parts) < 2:
            singles[key] = value
            continue
        row, col = parts[0], ".".join(parts[1:])
        if row not in rows:
            rows.append(row)
        if col not in cols:
            cols.append(col)
        cells[(row, col)] = value
    return rows, cols, cells, singles


def _list(items: dict[str, Any]) -> str:
    return '<div class="metrics">' + "".join(
        f'<div><span class="mono">{escape(str(k))}</span><span class="mono">'
        f"{escape(fmt(v))}</span></div>" for k, v in items.items()) + "</div>"


def _table(rows: list[str], cols: list[str], cells: dict[tuple[str, str], Any]) -> str:
    head = "".join(f'<th class="num">{escape(c)}</th>' for c in cols)
    body = "".join(
        f"<tr><th>{escape(r)}</th>" + "".join(
            f'<td class="num">{escape(fmt(cells.get((r, c))))}</td>' for c in cols) + "</tr>"
        for r in rows)
    return (f'<div class="scroll"><table class="matrix"><thead><tr><th></th>{head}</tr>'
            f"</thead><tbody>{body}</tbody></table></div>")


def grouped_metrics(metrics: dict[str, Any]) -> str:
    """A check's metrics as collapsible groups: a table where keys form rows x columns."""
    parts = []
    for head, items in split_groups(metrics).items():
        rows, cols, cells, singles = _matrix(items)
        inner = ""
        if len(rows) >= 2 and len(cols) >= 1 and len(cells) >= len(items) // 2:
            inner = _table(rows, cols, cells) + (_list(singles) if singles else "")
        else:
            inner = _list(items)
        title = head or "summary"
        open_ = " open" if not head else ""
        parts.append(f'<details class="group" data-group="{escape(title)}"{open_}><summary>'
                     f"{escape(title)} <span class=\"reason\">({len(items)})</span></summary>"
                     f"{inner}</details>")
    return "".join(parts)


def class_rows(card: dict[str, Any], check: str = "classes", prefix: str = "class"
               ) -> tuple[list[str], list[dict[str, Any]]]:
    """Per-class (or per-group) figures: (columns, rows with "name" and one value a column)."""
    metrics = dig(card, "checks", check, "metrics")
    if not isinstance(metrics, dict):
        return [], []
    rows: dict[str, dict[str, Any]] = {}
    cols: list[str] = []
    for key, value in metrics.items():
        parts = _parts(str(key))
        if len(parts) < 3 or parts[0] != prefix:
            continue
        name, col = parts[1], ".".join(parts[2:])
        rows.setdefault(name, {"name": name})[col] = value
        if col not in cols:
            cols.append(col)
    order = sorted(rows, key=lambda n: (0, int(n)) if n.isdigit() else (1, n))
    cols = sorted(cols, key=lambda c: (c != "n_samples", c != "accuracy", c))
    return cols, [rows[n] for n in order]


def per_class(card: dict[str, Any]) -> str:
    """Per-class and per-group tables (the ``classes`` and ``subgroups`` checks)."""
    out = []
    for check, prefix, title in (("classes", "class", "Per class"),
                                 ("subgroups", "group", "Per group")):
        cols, rows = class_rows(card, check, prefix)
        if not rows:
            continue
        head = "".join(f'<th class="num">{escape(c)}</th>' for c in cols)
        body = []
        for r in rows:
            cells = []
            for c in cols:
                v = number(r.get(c))
                pct = "accuracy" in c and v is not None
                shade = (f' style="background:rgba(207,34,46,{(1 - v) * 0.35:.2f})"'
                         if pct and v is not None else "")
                text = f"{v * 100:.0f}%" if pct and v is not None else fmt(r.get(c))
                cells.append(f'<td class="num"{shade}>{escape(text)}</td>')
            body.append(f'<tr data-{prefix}="{escape(r["name"])}"><th>{escape(r["name"])}'
                        f"</th>{''.join(cells)}</tr>")
        out.append(f'<h3>{title}</h3><div class="scroll"><table class="matrix" '
                   f'data-breakdown="{check}"><thead><tr><th>{prefix}</th>{head}</tr></thead>'
                   f"<tbody>{''.join(body)}</tbody></table></div>")
    if not out:
        return ""
    return ('<section id="breakdown"><h2>Per class and per group</h2><p class="reason">'
            "Clean and robust accuracy for each class (and each group, when the evaluation set "
            "has a <code>group</code> array); redder is worse.</p>" + "".join(out) +
            "</section>")
