"""Which inputs broke the model: a compact, capped record of the confirmed adversarial examples.

The adversarial check keeps every confirmed example in ``ctx.per_sample`` for the checks after
it; the scorecard keeps, per radius, the indices of every broken sample and, for at most
``cap`` of them (the lowest indices; fewer when samples are large), the clean input, the
adversarial input (exactly the float32 values that were re-checked on onnxruntime), the attack
that found it, the label and the top class and confidence on both. Arrays travel as base64 of
little-endian float32 in C order, shaped ``sample_shape``.

``to_npz`` turns the section back into arrays (``GET /v1/certifications/{id}/adversarial.npz``,
``--report DIR``), ``decode`` gives one row for a gallery.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

CAP = 12                 # examples kept per radius
FLOAT_BUDGET = 1 << 16   # ... and at most this many floats per radius (x and x_adv each)
ENCODING = "base64 float32 little-endian, C order, shaped sample_shape"


def encode(x: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(tuple(shape))


def cap_for(sample_shape: tuple[int, ...]) -> int:
    size = int(np.prod(sample_shape)) or 1
    return max(1, min(CAP, FLOAT_BUDGET // size))


def radius_record(*, norm: str, eps_label: str, eps: float, x: np.ndarray, y: np.ndarray,
                  index: np.ndarray, x_adv: np.ndarray, broken_by: np.ndarray,
                  probs: Any) -> dict[str, Any]:
    """One radius: every broken index, and the first ``cap`` examples in full.

    ``probs(batch) -> probabilities`` reads the model (onnxruntime, as shipped) so labels and
    confidences are those of the certified model, not of its torch conversion.
    """
    order = np.argsort(index, kind="stable")
    index, x_adv = index[order], x_adv[order]
    keep = min(len(index), cap_for(tuple(x.shape[1:])))
    kept, adv = index[:keep], x_adv[:keep]
    record: dict[str, Any] = {
        "norm": norm, "eps_label": eps_label, "eps": float(eps),
        "n_found": int(len(index)), "index": [int(i) for i in index], "kept": keep,
    }
    if keep == 0:
        return record
    clean = x[kept]
    p_clean, p_adv = probs(clean), probs(adv)
    flat = (adv - clean).reshape(keep, -1).astype(np.float64)
    record["examples"] = [{
        "index": int(i), "attack": str(broken_by[i]) or "?", "label": int(y[i]),
        "clean_pred": int(p_clean[k].argmax()), "clean_conf": float(p_clean[k].max()),
        "adv_pred": int(p_adv[k].argmax()), "adv_conf": float(p_adv[k].max()),
        "linf": float(np.abs(flat[k]).max()), "l2": float(np.linalg.norm(flat[k])),
        "x": encode(clean[k]), "x_adv": encode(adv[k]),
    } for k, i in enumerate(kept)]
    return record


def section(radii: list[dict[str, Any]], sample_shape: tuple[int, ...]) -> dict[str, Any]:
    return {"encoding": ENCODING, "sample_shape": list(sample_shape),
            "cap": cap_for(sample_shape), "radii": radii,
            "note": "every broken index; inputs for the first `cap` of each radius only"}


def records(card: dict[str, Any]) -> dict[str, Any] | None:
    """The examples section of a scorecard, or None (older scorecards, no attack ran)."""
    found = (((card.get("checks") or {}).get("adversarial") or {}).get("details") or {}) \
        .get("examples")
    return found if isinstance(found, dict) and isinstance(found.get("radii"), list) else None


def to_npz(card: dict[str, Any]) -> bytes | None:
    """The kept examples as one .npz (None when the scorecard has none).

    Arrays, one row per example: ``index`` (into the evaluation set), ``x``, ``x_adv``,
    ``eps`` (float), ``eps_label``, ``norm``, ``attack``, ``label``, ``clean_pred``,
    ``clean_conf``, ``adv_pred``, ``adv_conf``; and per radius ``broken@<norm>@<eps_label>``:
    every broken index, including those whose inputs were not kept.
    """
    sec = records(card)
    if sec is None:
        return None
    shape = tuple(int(s) for s in sec.get("sample_shape") or [])
    rows = [(r, e) for r in sec["radii"] for e in r.get("examples") or []]
    arrays: dict[str, np.ndarray] = {
        "index": np.array([e["index"] for _, e in rows], dtype=np.int64),
        "x": np.stack([decode(e["x"], shape) for _, e in rows]) if rows
        else np.zeros((0, *shape), np.float32),
        "x_adv": np.stack([decode(e["x_adv"], shape) for _, e in rows]) if rows
        else np.zeros((0, *shape), np.float32),
        "eps": np.array([r["eps"] for r, _ in rows], dtype=np.float64),
        "eps_label": np.array([r["eps_label"] for r, _ in rows], dtype=str),
        "norm": np.array([r["norm"] for r, _ in rows], dtype=str),
        "attack": np.array([e["attack"] for _, e in rows], dtype=str),
        "label": np.array([e["label"] for _, e in rows], dtype=np.int64),
        "clean_pred": np.array([e["clean_pred"] for _, e in rows], dtype=np.int64),
        "clean_conf": np.array([e["clean_conf"] for _, e in rows], dtype=np.float64),
        "adv_pred": np.array([e["adv_pred"] for _, e in rows], dtype=np.int64),
        "adv_conf": np.array([e["adv_conf"] for _, e in rows], dtype=np.float64),
    }
    for r in sec["radii"]:
        arrays[f"broken@{r['norm']}@{r['eps_label']}"] = np.array(r.get("index") or [],
                                                                   dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
