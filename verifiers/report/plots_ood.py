"""Figures for the OOD and calibration checks: confidence off the data, reliability on it."""

from __future__ import annotations

from typing import Any

from verifiers.report.access import dig, metric, number
from verifiers.report.svg import GRID, INK, MUTED, PALETTE, Axes, Figure, percent, stack

# Keys under which a suite's details may carry a confidence histogram {"edges", "counts"}.
_HISTOGRAM_KEYS = ("confidence_histogram", "msp_histogram", "histogram")


def _histogram(entry: Any) -> tuple[list[float], list[float]] | None:
    if not isinstance(entry, dict):
        return None
    for key in _HISTOGRAM_KEYS:
        h = entry.get(key)
        if not isinstance(h, dict):
            continue
        edges, counts = h.get("edges", h.get("bins")), h.get("counts")
        if (isinstance(edges, list) and isinstance(counts, list) and len(counts) >= 1
                and len(edges) == len(counts) + 1
                and all(number(v) is not None for v in edges + counts)):
            return [float(e) for e in edges], [float(c) for c in counts]
    return None


def _suites(card: dict[str, Any]) -> dict[str, Any]:
    suites = dig(card, "checks", "ood", "details", "suites")
    return suites if isinstance(suites, dict) else {}


def ood_confidence(card: dict[str, Any]) -> Figure | None:
    if dig(card, "checks", "ood") is None:
        return None
    return _ood_histograms(card) or _ood_bars(card)


def _ood_histograms(card: dict[str, Any]) -> Figure | None:
    series = []
    in_dist = _histogram(dig(card, "checks", "ood", "details", "in_distribution"))
    if in_dist is not None:
        series.append(("in-distribution", in_dist))
    series += [(name, h) for name, entry in _suites(card).items()
               if (h := _histogram(entry)) is not None]
    if not series or (in_dist is not None and len(series) == 1):
        return None
    series = series[:9]
    fractions = [[c / (sum(counts) or 1.0) for c in counts] for _, (_, counts) in series]
    top = max(max(f) for f in fractions) * 1.1 or 1.0
    ax = Axes("ood-histograms", "Top-class confidence on in- and out-of-distribution inputs",
              (0.0, 1.0), (0.0, top), height=340)
    ax.frame([(t, percent(t)) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)],
             [(t, percent(t)) for t in _ticks(top)], "top-class probability (confidence)",
             "fraction of inputs")
    legend = []
    for i, ((name, (edges, _)), frac) in enumerate(zip(series, fractions, strict=True)):
        color = INK if name == "in-distribution" else PALETTE[i % len(PALETTE)]
        steps = [(edges[0], 0.0)]
        for lo, hi, f in zip(edges[:-1], edges[1:], frac, strict=True):
            steps += [(lo, f), (hi, f)]
        steps.append((edges[-1], 0.0))
        ax.line(steps, color, width=3 if color == INK else 1.8, markers=False, name=name)
        legend.append((name, color, False))
    ax.legend(legend, x=ax.left + 10)
    return Figure("ood-histograms", "OOD confidence histograms",
                  "An overconfident model puts OOD inputs at the right, next to its own data.",
                  ax.svg())


def _ticks(top: float) -> list[float]:
    step = 0.05 if top <= 0.3 else 0.1 if top <= 0.6 else 0.2
    return [i * step for i in range(int(top / step) + 1)]


def _ood_bars(card: dict[str, Any]) -> Figure | None:
    rows = []
    for name in _suites(card):
        mean = metric(card, f"ood.{name}.mean_confidence")
        if mean is not None:
            rows.append((name, mean, metric(card, f"ood.{name}.max_confidence"),
                         metric(card, f"ood.{name}.auroc.msp")))
    if metric(card, "ood.adversarial.mean_confidence") is not None:
        rows.append(("adversarial", metric(card, "ood.adversarial.mean_confidence"),
                     metric(card, "ood.adversarial.max_confidence"),
                     metric(card, "ood.adversarial.auroc.msp")))
    if not rows:
        return None
    row_h = 30
    ax = Axes("ood-confidence", "Confidence on out-of-distribution inputs", (0.0, 1.0),
              (0.0, float(len(rows))), height=row_h * len(rows) + 84,
              margin=(120, 84, 26, 46))
    ax.frame([(t, percent(t)) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)],
             [(len(rows) - i - 0.5, name) for i, (name, *_r) in enumerate(rows)],
             "top-class probability (confidence): bar = mean, tick = max", "", y_grid=False)
    for t in (0.2, 0.4, 0.6, 0.8, 1.0):
        ax.parts.append(f'<line x1="{ax.sx(t):.1f}" x2="{ax.sx(t):.1f}" y1="{ax.top}" '
                        f'y2="{ax.bottom}" stroke="{GRID}"/>')
    ax.text(ax.right + 42, ax.top - 8, "AUROC (MSP)", size=11, color=MUTED)
    for i, (name, mean, peak, auroc) in enumerate(rows):
        y = len(rows) - i - 1
        color = PALETTE[3] if mean >= 0.9 else PALETTE[1] if mean >= 0.6 else PALETTE[0]
        ax.rect(0.0, y + 0.2, mean, y + 0.8, color, opacity=0.85,
                tip=f"{name}: mean confidence {mean:.3f}")
        if peak is not None:
            ax.rect(peak - 0.003, y + 0.1, peak + 0.003, y + 0.9, INK)
        if auroc is not None:
            ax.text(ax.right + 42, ax.sy(y + 0.5) + 4, f"{auroc:.3f}", size=11, color=INK)
    in_dist = metric(card, "calibration.mean_confidence")
    if in_dist is not None:
        x = ax.sx(in_dist)
        ax.parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{ax.top}" y2="{ax.bottom}" '
                        f'stroke="{INK}" stroke-width="2" stroke-dasharray="5 3"/>')
        ax.text(x - 4, ax.top - 8, f"in-distribution mean {percent(in_dist)}", anchor="end",
                size=11, color=INK)
    return Figure("ood-confidence", "Confidence on OOD inputs",
                  "Mean (bar) and maximum (tick) top-class probability per OOD suite, coloured "
                  "by the mean (vermilion >= 90%, orange >= 60%); the dashed line is the mean "
                  "confidence on the evaluation set.", ax.svg())


def reliability_diagram(card: dict[str, Any]) -> Figure | None:
    bins = dig(card, "checks", "calibration", "details", "reliability_diagram")
    if not isinstance(bins, list):
        return None
    rows = [b for b in bins if isinstance(b, dict) and number(b.get("lower")) is not None
            and number(b.get("upper")) is not None]
    full = [b for b in rows if number(b.get("accuracy")) is not None
            and number(b.get("mean_confidence")) is not None and (b.get("count") or 0) > 0]
    if not full:
        return None
    ax = Axes("reliability-diagram", "Reliability diagram", (0.0, 1.0), (0.0, 1.0),
              height=330, margin=(58, 16, 16, 20))
    ticks = [(t, percent(t)) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    # Hatched gap: readable both above a bar (over-confident) and over it (under-confident).
    ax.parts.append(f'<defs><pattern id="rg-gap" width="6" height="6" '
                    f'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
                    f'<rect width="6" height="6" fill="#ffffff" fill-opacity="0.55"/>'
                    f'<line x1="0" y1="0" x2="0" y2="6" stroke="{PALETTE[3]}" '
                    f'stroke-width="3"/></pattern></defs>')
    ax.frame([], ticks, "", "accuracy")
    for b in full:
        lo, hi, acc, conf = (float(b[k]) for k in ("lower", "upper", "accuracy",
                                                   "mean_confidence"))
        ax.rect(lo, 0.0, hi, acc, PALETTE[0], opacity=0.85,
                tip=f"({lo:.2f}, {hi:.2f}]: accuracy {acc:.3f}, confidence {conf:.3f}, "
                    f"n={b.get('count')}")
        ax.rect(lo, min(acc, conf), hi, max(acc, conf), "url(#rg-gap)",
                tip=f"gap {abs(acc - conf):.3f}", stroke=PALETTE[3])
    ax.line([(0.0, 0.0), (1.0, 1.0)], MUTED, width=1.5, dashed=True, markers=False,
            name="perfect calibration")
    ax.legend([("accuracy per bin", PALETTE[0], False),
               ("gap to mean confidence", PALETTE[3], False),
               ("perfect calibration", MUTED, True)], x=ax.left + 10)
    ece, mce = metric(card, "calibration.ece"), metric(card, "calibration.mce")
    errors = "" if ece is None else f"ECE {ece * 100:.2f}%" + (
        f", MCE {mce * 100:.1f}%" if mce is not None else "") + ". "
    top = max(int(b.get("count") or 0) for b in rows) or 1
    counts = Axes("reliability-counts", "samples per bin", (0.0, 1.0), (0.0, float(top)),
                  height=110, margin=(58, 16, 8, 46))
    counts.frame([(t, f"{t:.1f}") for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)],
                 [(0.0, "0"), (float(top), str(top))], "confidence (top-class probability)",
                 "samples")
    for b in rows:
        if (b.get("count") or 0) > 0:
            counts.rect(float(b["lower"]), 0.0, float(b["upper"]), float(b["count"]), MUTED,
                        opacity=0.6, tip=f"n={b['count']}")
    return Figure("reliability-diagram", "Reliability diagram",
                  f"{errors}Accuracy per confidence bin on the evaluation set; hatched: the "
                  "gap to the bin's mean confidence, which ECE averages (weighted by the "
                  "samples per bin, below).",
                  stack("reliability-diagram", "Reliability diagram", [ax, counts]))
