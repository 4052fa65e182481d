"""Attribution heatmaps of the explain check, as small inline PNGs (no external assets).

Each map in ``checks.explain.details.maps`` is a 2-D list (at most 32 x 32); it becomes a
PNG written here with zlib (no imaging library), shown enlarged with ``image-rendering:
pixelated``. Inputs are grey (black = the map's minimum, white = its maximum); attributions
diverge from white: red for positive evidence for the label, blue for negative, scaled by the
map's largest magnitude; the evidence mask is white where the evidence lies.
"""

from __future__ import annotations

import base64
import struct
import zlib
from html import escape
from typing import Any

from verifiers.report.access import dig

RED, BLUE = (213, 94, 0), (0, 114, 178)   # Okabe-Ito vermillion and blue
SIDE = 96                                 # shown size in CSS pixels


def _png(rows: list[list[tuple[int, int, int]]]) -> bytes:
    height, width = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _grid(values: Any) -> list[list[float]] | None:
    if not isinstance(values, list) or not values or not all(
            isinstance(r, list) and len(r) == len(values[0]) and r for r in values):
        return None
    try:
        return [[float(v) for v in r] for r in values]
    except (TypeError, ValueError):
        return None


def _grey(grid: list[list[float]]) -> list[list[tuple[int, int, int]]]:
    lo = min(min(r) for r in grid)
    hi = max(max(r) for r in grid)
    span = hi - lo or 1.0
    return [[(g, g, g) for g in (int(round(255 * (v - lo) / span)) for v in r)] for r in grid]


def _diverging(grid: list[list[float]]) -> list[list[tuple[int, int, int]]]:
    top = max(abs(v) for r in grid for v in r) or 1.0

    def colour(v: float) -> tuple[int, int, int]:
        t = min(1.0, abs(v) / top)
        end = RED if v > 0 else BLUE
        return tuple(int(round(255 + (e - 255) * t)) for e in end)  # type: ignore[return-value]

    return [[colour(v) for v in r] for r in grid]


def _img(values: Any, kind: str, label: str) -> str:
    grid = _grid(values)
    if grid is None:
        return "<td>-</td>"
    pixels = _diverging(grid) if kind == "attribution" else _grey(grid)
    data = base64.b64encode(_png(pixels)).decode()
    height = max(8, round(SIDE * len(grid) / len(grid[0])))
    return (f'<td><img data-map="{kind}" alt="{escape(label)}" width="{SIDE}" '
            f'height="{height}" style="image-rendering:pixelated;border:1px solid #d8dee4" '
            f'src="data:image/png;base64,{data}"></td>')


def explanation_maps(card: dict[str, Any]) -> str:
    """The report section, or "" when the explain check left no maps."""
    details = dig(card, "checks", "explain", "details") or {}
    maps = details.get("maps") if isinstance(details, dict) else None
    if not isinstance(maps, list) or not maps:
        return ""
    has_mask = any(isinstance(m, dict) and "mask" in m for m in maps)
    has_adv = any(isinstance(m, dict) and "adversarial" in m for m in maps)
    head = ["sample", "input", "attribution"] + (["evidence mask"] if has_mask else [])
    if has_adv:
        head += ["adversarial input", "its attribution"]
    rows = []
    for m in maps:
        if not isinstance(m, dict):
            continue
        name = (f"#{m.get('index')}: label {m.get('label')}, predicted "
                f"{m.get('prediction')}")
        cells = [f"<td>{escape(name)}</td>", _img(m.get("input"), "input", f"input {name}"),
                 _img(m.get("attribution"), "attribution", f"attribution {name}")]
        if has_mask:
            cells.append(_img(m.get("mask"), "mask", f"mask {name}"))
        adv = m.get("adversarial")
        if isinstance(adv, dict):
            what = f"eps {adv.get('eps')}, predicted {adv.get('prediction')}"
            cells += [_img(adv.get("input"), "input", f"adversarial input {what}"),
                      _img(adv.get("attribution"), "attribution", f"attribution {what}")
                      .replace("<td>", f"<td title=\"{escape(what)}\">", 1)]
        elif has_adv:
            cells += ["<td>-</td>", "<td>-</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    method = escape(str(details.get("method", "?")))
    runtime = escape(str(details.get("runtime", "?")))
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (f'<section id="explanations"><h2>Explanations</h2><p class="reason">{method} on '
            f"{runtime}, for the label: red is evidence for it, blue against it (each map "
            "scaled to its largest magnitude). Adversarial examples are the adversarial "
            "check's confirmed ones, attributed for the same label.</p>"
            f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</section>")
