"""An SVG status badge: the standard's name on the left, the verdict on the right."""

from __future__ import annotations

from html import escape
from typing import Any

from verifiers.report.style import verdict_colors


def _width(text: str, bold: bool = False) -> int:
    # Verdana-ish 11px: about 6.6 px a character (7.4 bold), plus padding either side.
    return int(len(text) * (7.4 if bold else 6.6)) + 14


def render_badge(card: dict[str, Any]) -> str:
    std = card.get("standard") or {}
    left = f"robustgate {std.get('name', '?')}"[:60]
    right = str(card.get("verdict", "UNKNOWN"))
    colour = verdict_colors(right)[0]
    lw, rw = _width(left), _width(right, bold=True)
    total = lw + rw
    title = f"{left} v{std.get('version', '?')}: {right}"
    uid = f"rg-badge-{right.lower()}"  # ids stay distinct when badges share a page
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(title)}" data-verdict="{escape(right)}">'
        f"<title>{escape(title)}</title>"
        f'<linearGradient id="{uid}-s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="{uid}-r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#{uid}-r)"><rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#{uid}-s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
        f'sans-serif" font-size="11">'
        f'<text x="{lw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">{escape(left)}</text>'
        f'<text x="{lw / 2:.1f}" y="14">{escape(left)}</text>'
        f'<text x="{lw + rw / 2:.1f}" y="15" fill="#010101" fill-opacity=".3">'
        f"{escape(right)}</text>"
        f'<text x="{lw + rw / 2:.1f}" y="14" font-weight="bold">{escape(right)}</text>'
        f"</g></svg>\n")
