"""The report's figures, each drawn only when the scorecard holds its data.

- robust accuracy vs eps, one chart per threat model: the worst case over the battery, the
  cascade after each attack (from ``successes``), AutoAttack's own figure when it ran;
- clean vs attacked vs certified accuracy per eps, once a ``certified`` check reports;
- OOD confidence: per-suite histograms when the check records them, else mean / max confidence
  per suite next to the in-distribution confidence;
- the reliability diagram of the calibration check, with the samples per bin below it.
"""

from __future__ import annotations

from typing import Any

from verifiers.report.access import check_metrics, dig, metric, number
from verifiers.report.plots_ood import ood_confidence, reliability_diagram
from verifiers.report.style import verdict_colors
from verifiers.report.svg import INK, MUTED, PALETTE, Axes, Figure, nice_ticks, num, percent

_OPS = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def figures(card: dict[str, Any]) -> list[Figure]:
    found = robustness_curves(card)
    for build in (certified_comparison, ood_confidence, reliability_diagram):
        figure = build(card)
        if figure is not None:
            found.append(figure)
    return found


def _y_ticks() -> list[tuple[float, str]]:
    return [(t, percent(t)) for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]


def _points(curve: Any) -> list[dict[str, Any]]:
    rows = [p for p in curve if isinstance(p, dict)] if isinstance(curve, list) else []
    rows = [p for p in rows if number(p.get("eps")) is not None
            and number(p.get("robust_accuracy")) is not None]
    return sorted(rows, key=lambda p: p["eps"])


def _curves(card: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    details = dig(card, "checks", "adversarial", "details") or {}
    curves = details.get("curves") if isinstance(details, dict) else None
    if isinstance(curves, dict):
        return {str(norm): _points(c) for norm, c in curves.items() if _points(c)}
    legacy = _points(details.get("curve")) if isinstance(details, dict) else []
    return {str(dig(card, "standard", "norm") or "linf"): legacy} if legacy else {}


def robustness_curves(card: dict[str, Any]) -> list[Figure]:
    out = []
    clean = metric(card, "clean.accuracy")
    n = number(dig(card, "dataset", "n_samples")) or 0
    order = dig(card, "checks", "adversarial", "details", "attacks") or []
    for i, (norm, points) in enumerate(_curves(card).items()):
        prefix = "" if i == 0 else f"{norm}."
        x_max = max(p["eps"] for p in points) * 1.08
        ax = Axes("robust-accuracy", f"Robust accuracy vs eps ({norm})", (0.0, x_max),
                  (0.0, 1.0))
        ticks = [(0.0, "0")] + [(p["eps"], str(p.get("eps_label", p["eps"]))) for p in points]
        if len(ticks) > 9:
            ticks = [(t, num(t)) for t in nice_ticks(0.0, x_max)]
        ax.frame(ticks, _y_ticks(), f"perturbation radius eps ({norm})", "robust accuracy")
        start = [(0.0, clean)] if clean is not None else []
        legend: list[tuple[str, str, bool]] = []
        cascade = _cascade(points, order, clean, n)
        for j, (attack, series) in enumerate(cascade.items()):
            color = PALETTE[(j + 1) % len(PALETTE)]
            ax.line(start + series, color, width=1.5, dashed=True, name=f"after {attack}")
            legend.append((f"after {attack}" if j == 0 else f"+ {attack}", color, True))
        aa = [(p["eps"], metric(card, f"adversarial.{prefix}autoattack.robust_accuracy@"
                                      f"{p.get('eps_label')}")) for p in points]
        aa = [(x, y) for x, y in aa if y is not None]
        if aa:
            ax.line(start + aa, PALETTE[3], width=2, dashed=True, name="autoattack")
            legend.append(("AutoAttack (standard)", PALETTE[3], True))
        if i == 0:  # the bound engine certifies the primary threat model
            certified = _certified_by_label(card)
            bound = [(p["eps"], certified[str(p.get("eps_label"))]) for p in points
                     if str(p.get("eps_label")) in certified]
            if bound:
                ax.line(start + bound, PALETTE[2], width=2.5, name="certified")
                legend.append(("certified (lower bound)", PALETTE[2], False))
        worst = [(p["eps"], float(p["robust_accuracy"])) for p in points]
        ax.line(start + worst, INK, width=3, name="worst case")
        for x, y in worst:
            ax.text(ax.sx(x), ax.sy(y) - 9, percent(y), size=11, color=INK, weight="600")
        legend.append(("worst case over the battery", INK, False))
        if _thresholds(card, ax, points, prefix, x_max):
            legend.append(("criterion threshold (colour: its result)", MUTED, True))
        ax.legend(legend)
        caption = ("Pointwise worst case over every attack (bold); each example re-checked on "
                   "onnxruntime. Dashed: robust accuracy after the cascade up to that attack. "
                   "Green, when bounds ran: certified accuracy; the truth lies in between.")
        status = dig(card, "checks", "adversarial", "status")
        if status not in (None, "ok"):
            caption += (f" The check is {status} "
                        f"({dig(card, 'checks', 'adversarial', 'reason')}): these figures are "
                        "upper bounds, not evidence.")
        out.append(Figure(f"robust-accuracy-{norm}", f"Robust accuracy vs eps ({norm})",
                          caption, ax.svg()))
    return out


def criteria_on(card: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The standard's criteria that judge the metric ``path`` (e.g. clean.accuracy)."""
    return [c for c in card.get("criteria") or []
            if isinstance(c, dict) and c.get("metric") == path
            and number(c.get("threshold")) is not None]


def threshold_label(c: dict[str, Any], as_percent: bool = True) -> str:
    t = float(c["threshold"])
    value = percent(t) if as_percent else f"{t:.3g}"
    sev = "required" if c.get("severity") == "required" else "advisory"
    return f"{_OPS.get(str(c.get('op')), c.get('op'))} {value} {sev}: {c.get('result', '?')}"


def _thresholds(card: dict[str, Any], ax: Axes, points: list[dict[str, Any]], prefix: str,
                x_max: float) -> bool:
    """Each criterion on a robust or certified accuracy at a plotted radius, drawn at it."""
    drawn = False
    half = 0.035 * x_max
    for p in points:
        label = p.get("eps_label")
        for path in (f"adversarial.{prefix}robust_accuracy@{label}",
                     f"certified.certified_accuracy@{label}" if not prefix else ""):
            for c in criteria_on(card, path) if path else []:
                color = verdict_colors(c.get("result"))[0]
                kind = "certified " if path.startswith("certified") else ""
                ax.threshold(p["eps"] - half, p["eps"] + half, float(c["threshold"]),
                             kind + threshold_label(c), color, result=str(c.get("result")))
                drawn = True
    return drawn


def _cascade(points: list[dict[str, Any]], order: list[Any], clean: float | None,
             n: float) -> dict[str, list[tuple[float, float]]]:
    """Accuracy after each attack of the cascade, from the per-eps success counts."""
    if not n or clean is None or not all(isinstance(p.get("successes"), dict) for p in points):
        return {}
    names = [a for a in order if any(a in p["successes"] for p in points)]
    names += [a for p in points for a in p["successes"] if a not in names]
    out: dict[str, list[tuple[float, float]]] = {a: [] for a in names}
    alive = clean * n
    for p in points:
        left = alive
        for attack in names:
            left -= number(p["successes"].get(attack)) or 0
            out[attack].append((p["eps"], left / n))
        alive = float(p.get("n_robust", p["robust_accuracy"] * n))
    return out if len(names) > 1 else {}


def _certified_by_label(card: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for pref in ("certified_accuracy@", "verified_accuracy@", "accuracy@",
                 "robust_accuracy@"):
        for key, value in check_metrics(card, "certified").items():
            if key.startswith(pref) and number(value) is not None:
                found.setdefault(key[len(pref):], float(value))
    return found


def certified_comparison(card: dict[str, Any]) -> Figure | None:
    certified = _certified_by_label(card)
    clean = metric(card, "clean.accuracy")
    labels = [label for label in certified
              if metric(card, f"adversarial.robust_accuracy@{label}") is not None]
    if not labels or clean is None:
        return None
    ax = Axes("certified-vs-attacked", "Clean, attacked and certified accuracy",
              (0.0, float(len(labels))), (0.0, 1.0), margin=(58, 16, 44, 46))
    ax.frame([(i + 0.5, f"eps {label}") for i, label in enumerate(labels)], _y_ticks(),
             "perturbation radius", "accuracy")
    kinds = (("clean", PALETTE[0]), ("attacked (upper bound)", PALETTE[1]),
             ("certified (lower bound)", PALETTE[2]))
    for i, label in enumerate(labels):
        values = (clean, metric(card, f"adversarial.robust_accuracy@{label}"), certified[label])
        for j, ((name, color), value) in enumerate(zip(kinds, values, strict=True)):
            x0 = i + 0.14 + j * 0.24
            ax.rect(x0, 0.0, x0 + 0.22, value, color, tip=f"{name} at eps {label}: {value:.4g}")
            ax.text(ax.sx(x0 + 0.11), ax.sy(value) - 5, percent(value), size=11, color=INK)
        for j, path in ((1, f"adversarial.robust_accuracy@{label}"),
                        (2, f"certified.certified_accuracy@{label}")):
            for c in criteria_on(card, path):
                x0 = i + 0.14 + j * 0.24
                sev = "req." if c.get("severity") == "required" else "adv."
                ax.threshold(x0 - 0.02, x0 + 0.24, float(c["threshold"]),
                             f"{threshold_label(c).split(' ')[0]} {percent(c['threshold'])} "
                             f"{sev}",
                             verdict_colors(c.get("result"))[0], result=str(c.get("result")))
    ax.legend_row([(name, color, False) for name, color in kinds], y=16)
    return Figure("certified-vs-attacked", "Clean vs attacked vs certified accuracy",
                  "Certified (bound) accuracy <= attacked robust accuracy <= clean accuracy; "
                  "the true robust accuracy lies between the last two.", ax.svg())

