"""Which inputs broke the model: a gallery of the confirmed adversarial examples.

Reads ``checks.adversarial.details.examples`` (verifiers/examples.py). Image inputs
((C, H, W) or (H, W, C) with 1 or 3 channels, or (H, W)) are drawn as inline PNGs: the clean
input, the adversarial one (both on the input domain's range), and their difference amplified
to the full grey scale (mid-grey is no change). Other inputs get the table without pictures.
Every broken index is listed, also those whose inputs the scorecard did not keep.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

import numpy as np

from verifiers.examples import decode, records
from verifiers.report.access import dig, number
from verifiers.report.heatmaps import _png

SIDE = 84  # shown size in CSS pixels


def image_layout(shape: list[int] | tuple[int, ...]) -> str | None:
    """"chw", "hwc", "hw" or None when the samples are not images."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2 and min(shape) >= 4:
        return "hw"
    if len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 4:
        return "chw"
    if len(shape) == 3 and shape[2] in (1, 3) and min(shape[:2]) >= 4:
        return "hwc"
    return None


def to_rgb(x: np.ndarray, layout: str) -> np.ndarray:
    """(H, W, 3) float array from one sample."""
    if layout == "hw":
        x = x[:, :, None]
    elif layout == "chw":
        x = np.moveaxis(x, 0, -1)
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


def png_uri(rgb: np.ndarray) -> str:
    pixels = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    rows = [[tuple(int(c) for c in px) for px in row] for row in pixels]
    return "data:image/png;base64," + base64.b64encode(_png(rows)).decode()  # type: ignore[arg-type]


def pictures(example: dict[str, Any], shape: list[int], layout: str,
             low: float, high: float) -> tuple[str, str, str, float]:
    """(clean, adversarial, amplified difference) as PNG data URIs, and the amplification."""
    x, adv = decode(example["x"], shape), decode(example["x_adv"], shape)
    span = (high - low) or 1.0
    clean = to_rgb((x - low) / span * 255.0, layout)
    broken = to_rgb((adv - low) / span * 255.0, layout)
    diff = to_rgb((adv - x).astype(np.float64), layout)
    top = float(np.abs(diff).max()) or 1.0
    gain = 127.0 / top
    return (png_uri(clean), png_uri(broken), png_uri(128.0 + diff * gain),
            gain * span / 255.0)


def _img(uri: str, alt: str, kind: str, height: int) -> str:
    return (f'<img data-example="{kind}" alt="{escape(alt)}" width="{SIDE}" height="{height}" '
            f'src="{uri}">')


def gallery(card: dict[str, Any], limit_per_radius: int | None = None,
            class_names: list[str] | None = None) -> str:
    """The report section, or "" when the scorecard holds no examples."""
    sec = records(card)
    if sec is None or not any(r.get("n_found") for r in sec["radii"]):
        return ""
    shape = [int(s) for s in sec.get("sample_shape") or []]
    layout = image_layout(shape)
    low, high = (dig(card, "dataset", "input_range") or [0.0, 1.0])[:2]
    low = number(low) if number(low) is not None else 0.0
    high = number(high) if number(high) is not None else 1.0

    def name(k: Any) -> str:
        return f"{k} ({class_names[k]})" if class_names and isinstance(k, int) and \
            0 <= k < len(class_names) else str(k)

    blocks = []
    for r in sec["radii"]:
        found = int(r.get("n_found") or 0)
        if not found:
            continue
        shown = (r.get("examples") or [])[:limit_per_radius]
        cards = []
        for e in shown:
            caption = (f'<div class="ex-cap"><b>#{escape(str(e["index"]))}</b> · '
                       f'{escape(str(e.get("attack")))}<br>label {escape(name(e["label"]))}: '
                       f'{escape(name(e["clean_pred"]))} ({e["clean_conf"] * 100:.0f}%) → '
                       f'<b class="ex-bad">{escape(name(e["adv_pred"]))}</b> '
                       f'({e["adv_conf"] * 100:.0f}%)<br>'
                       f'‖δ‖∞ {e["linf"]:.3g} · ‖δ‖₂ {e["l2"]:.3g}</div>')
            if layout is not None:
                h, w = (shape[1], shape[2]) if layout == "chw" else (shape[0], shape[1])
                height = max(8, round(SIDE * h / w))
                a, b, d, gain = pictures(e, shape, layout, low, high)
                imgs = (f'<div class="ex-imgs"><figure>{_img(a, "clean input", "clean", height)}'
                        f'<figcaption>clean</figcaption></figure><figure>'
                        f'{_img(b, "adversarial input", "adversarial", height)}'
                        f'<figcaption>adversarial</figcaption></figure><figure>'
                        f'{_img(d, "difference", "difference", height)}'
                        f'<figcaption>δ ×{gain:.0f}</figcaption></figure></div>')
            else:
                imgs = ""
            cards.append(f'<div class="ex" data-index="{escape(str(e["index"]))}">'
                         f"{imgs}{caption}</div>")
        indices = ", ".join(str(i) for i in (r.get("index") or [])[:200])
        more = "" if found <= 200 else f" … ({found - 200} more)"
        blocks.append(
            f'<div class="ex-radius" data-eps="{escape(str(r.get("eps_label")))}">'
            f'<h3>{escape(str(r.get("norm")))} eps {escape(str(r.get("eps_label")))}: '
            f"{found} broken</h3><div class=\"ex-grid\">{''.join(cards)}</div>"
            f'<p class="reason">Broken sample indices: <span class="mono">{indices}{more}'
            f"</span></p></div>")
    kept = escape(str(sec.get("cap")))
    return ('<section id="adversarial-examples"><h2>Adversarial examples</h2>'
            '<p class="reason">Confirmed on onnxruntime: inside the perturbation set and the '
            f"input range, and misclassified. Up to {kept} per radius are kept with their "
            "inputs (the lowest indices); every broken index is listed. The difference is "
            "amplified so the largest change spans the grey scale (mid-grey: no change). "
            "Download them all: <code>adversarial.npz</code>.</p>"
            f"{''.join(blocks)}</section>")


CSS = """
.ex-grid { display:grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr));
  gap: 10px; margin: 8px 0; }
.ex { border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
.ex-imgs { display:flex; gap: 6px; }
.ex-imgs figure { margin: 0; border: 0; padding: 0; text-align: center; }
.ex-imgs img { image-rendering: pixelated; border: 1px solid var(--line); display:block; }
.ex-imgs figcaption { font-size: 11px; margin: 2px 0 0; }
.ex-cap { font-size: 12.5px; margin-top: 4px; }
.ex-bad { color: #cf222e; }
"""
