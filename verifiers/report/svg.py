"""A very small SVG plotting kit: axes with linear scales, lines, bars, a legend.

Plots are inline SVG strings, so a report is one self-contained file with nothing to fetch.
Every plot gets ``role="img"``, a <title> for screen readers and ``data-plot`` for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C6D1F",
           "#882255")
INK, MUTED, GRID = "#1f2328", "#59636e", "#d8dee4"


def num(value: float) -> str:
    """Coordinates with two decimals: small files, no visible rounding."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(low / step - 1e-9) * step
    ticks, t = [], start
    while t <= high + 1e-9 * step:
        ticks.append(round(t, 12))
        t += step
    return ticks


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


@dataclass(frozen=True)
class Figure:
    """A rendered plot: ``key`` is stable (tests and anchors), ``svg`` inline markup."""

    key: str
    title: str
    caption: str
    svg: str


@dataclass
class Axes:
    """A plot area of ``width`` x ``height`` pixels mapping data ranges to it."""

    plot: str  # data-plot attribute, e.g. "robust-accuracy"
    title: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: int = 560
    height: int = 320
    margin: tuple[int, int, int, int] = (58, 16, 16, 46)  # left, right, top, bottom
    parts: list[str] = field(default_factory=list)
    legend_entries: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def left(self) -> float:
        return self.margin[0]

    @property
    def right(self) -> float:
        return self.width - self.margin[1]

    @property
    def top(self) -> float:
        return self.margin[2]

    @property
    def bottom(self) -> float:
        return self.height - self.margin[3]

    def sx(self, x: float) -> float:
        lo, hi = self.x_range
        return self.left + (x - lo) / ((hi - lo) or 1.0) * (self.right - self.left)

    def sy(self, y: float) -> float:
        lo, hi = self.y_range
        return self.bottom - (y - lo) / ((hi - lo) or 1.0) * (self.bottom - self.top)

    def text(self, x: float, y: float, label: str, *, anchor: str = "middle", size: int = 12,
             color: str = MUTED, weight: str = "normal", rotate: bool = False) -> None:
        turn = f' transform="rotate(-90 {num(x)} {num(y)})"' if rotate else ""
        self.parts.append(
            f'<text x="{num(x)}" y="{num(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{color}" font-weight="{weight}"{turn}>{escape(label)}</text>')

    def frame(self, x_ticks: list[tuple[float, str]], y_ticks: list[tuple[float, str]],
              x_label: str, y_label: str, *, y_grid: bool = True) -> None:
        for y, label in y_ticks:
            py = self.sy(y)
            if y_grid:
                self.parts.append(f'<line x1="{num(self.left)}" x2="{num(self.right)}" '
                                  f'y1="{num(py)}" y2="{num(py)}" stroke="{GRID}"/>')
            self.text(self.left - 6, py + 4, label, anchor="end", size=11)
        for x, label in x_ticks:
            px = self.sx(x)
            self.parts.append(f'<line x1="{num(px)}" x2="{num(px)}" y1="{num(self.bottom)}" '
                              f'y2="{num(self.bottom + 4)}" stroke="{MUTED}"/>')
            self.text(px, self.bottom + 17, label, size=11)
        self.parts.append(f'<line x1="{num(self.left)}" x2="{num(self.right)}" '
                          f'y1="{num(self.bottom)}" y2="{num(self.bottom)}" stroke="{MUTED}"/>')
        self.parts.append(f'<line x1="{num(self.left)}" x2="{num(self.left)}" '
                          f'y1="{num(self.top)}" y2="{num(self.bottom)}" stroke="{MUTED}"/>')
        self.text((self.left + self.right) / 2, self.height - 8, x_label, size=12, color=INK)
        self.text(14, (self.top + self.bottom) / 2, y_label, size=12, color=INK, rotate=True)

    def line(self, points: list[tuple[float, float]], color: str, *, width: float = 2,
             dashed: bool = False, markers: bool = True, name: str = "") -> None:
        if not points:
            return
        coords = " ".join(f"{num(self.sx(x))},{num(self.sy(y))}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.parts.append(f'<polyline class="series" data-series="{escape(name)}" '
                          f'points="{coords}" fill="none" stroke="{color}" '
                          f'stroke-width="{num(width)}" stroke-linejoin="round"{dash}/>')
        if markers:
            for x, y in points:
                self.parts.append(f'<circle cx="{num(self.sx(x))}" cy="{num(self.sy(y))}" '
                                  f'r="{num(width + 1.5)}" fill="{color}"/>')

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: str, *,
             opacity: float = 1.0, tip: str = "", stroke: str = "") -> None:
        """A rectangle between data corners (x0, y0) and (x1, y1)."""
        px0, px1 = sorted((self.sx(x0), self.sx(x1)))
        py0, py1 = sorted((self.sy(y0), self.sy(y1)))
        title = f"<title>{escape(tip)}</title>" if tip else ""
        edge = f' stroke="{stroke}" stroke-width="1.5"' if stroke else ""
        self.parts.append(f'<rect class="bar" x="{num(px0)}" y="{num(py0)}" '
                          f'width="{num(max(px1 - px0, 0.5))}" height="{num(py1 - py0)}" '
                          f'fill="{color}" fill-opacity="{num(opacity)}"{edge}>{title}</rect>')

    def legend_row(self, entries: list[tuple[str, str, bool]], y: float) -> None:
        """Entries side by side above the plot (keep ``margin`` top >= 30 for it)."""
        x = self.left
        for name, color, dashed in entries:
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            self.parts.append(f'<line x1="{num(x)}" x2="{num(x + 18)}" y1="{num(y - 4)}" '
                              f'y2="{num(y - 4)}" stroke="{color}" stroke-width="3"{dash}/>')
            self.text(x + 24, y, name, anchor="start", size=11, color=INK)
            x += len(name) * 6.6 + 44

    def legend(self, entries: list[tuple[str, str, bool]], *, x: float | None = None,
               y: float | None = None) -> None:
        """Entries (name, colour, dashed), drawn in a band of their own above the plot area
        (``x``/``y`` are ignored: a legend inside the axes covered data). The band wraps into
        as many rows as the names need; :func:`stack` adds its height to the panel."""
        del x, y
        self.legend_entries = list(entries)

    def legend_band(self) -> tuple[float, str]:
        """(height, markup) of the legend band; (0, "") without a legend."""
        if not self.legend_entries:
            return 0.0, ""
        parts, x, row = [], float(self.left), 0
        for name, color, dashed in self.legend_entries:
            w = len(name) * 6.4 + 40
            if x + w > self.width - 8 and x > self.left:
                x, row = float(self.left), row + 1
            ly = 16 + 18 * row
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            parts.append(f'<line x1="{num(x)}" x2="{num(x + 18)}" y1="{num(ly - 4)}" '
                         f'y2="{num(ly - 4)}" stroke="{color}" stroke-width="3"{dash}/>'
                         f'<text x="{num(x + 24)}" y="{num(ly)}" text-anchor="start" '
                         f'font-size="11" fill="{INK}">{escape(name)}</text>')
            x += w
        return 18.0 * (row + 1) + 8, f'<g class="legend">{"".join(parts)}</g>'

    def threshold(self, x0: float, x1: float, y: float, label: str, color: str, *,
                  result: str = "") -> None:
        """A criterion's threshold: a dashed segment from x0 to x1 at y, labelled."""
        px0, px1, py = self.sx(x0), self.sx(x1), self.sy(y)
        self.parts.append(f'<g class="threshold" data-result="{escape(result)}">'
                          f'<line x1="{num(px0)}" x2="{num(px1)}" y1="{num(py)}" '
                          f'y2="{num(py)}" stroke="{color}" stroke-width="2.5" '
                          f'stroke-dasharray="2 3"/>'
                          f'<path d="M{num(px1)} {num(py)} l6 -4 v8 z" fill="{color}"/>'
                          f'{self._label_beside(px0, px1 + 8, py, label, color)}</g>')

    def _label_beside(self, left: float, right: float, y: float, label: str,
                      color: str) -> str:
        """A label right of ``right``, or left of ``left`` where it would leave the figure."""
        fits = right + len(label) * 6.0 <= self.width - 2
        x, anchor = (right, "start") if fits else (left - 4, "end")
        return (f'<text x="{num(x)}" y="{num(y - 4)}" text-anchor="{anchor}" '
                f'font-size="10.5" fill="{color}" font-weight="600">{escape(label)}</text>')

    def svg(self) -> str:
        return stack(self.plot, self.title, [self])


def stack(plot: str, title: str, panels: list[Axes]) -> str:
    """One SVG with the panels one under the other (e.g. a diagram and its counts)."""
    width = max(p.width for p in panels)
    body, y = [], 0.0
    for panel in panels:
        band, legend = panel.legend_band()
        if legend:
            body.append(legend if y == 0 else f'<g transform="translate(0 {num(y)})">{legend}</g>')
            y += band
        inner = "".join(panel.parts)
        body.append(inner if y == 0 else f'<g transform="translate(0 {num(y)})">{inner}</g>')
        y += panel.height
    height = round(y)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{escape(plot)}" '
            f'role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")
