"""What the Lp attacks found on one chunk of the evaluation set, and the merge of chunks.

A job's attacks are sharded by sample chunk (verifiers.plan); each chunk's evidence travels as
bytes (an ``.npz``, never a pickle) and the adversarial check's summary merges every chunk into
per-sample arrays over the whole set before it computes a metric. An in-process run takes the
same path over the same chunks, so a sharded job and ``robustgate certify`` report the same
figures.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RadiusEvidence:
    """One (threat model, eps) on one chunk; masks are chunk-length, ids are global."""

    robust: np.ndarray                 # bool: no confirmed example (cascade, then AutoAttack)
    broken_by: np.ndarray              # str: the attack whose example counted ('' if none)
    found_index: np.ndarray            # int64 sample ids with a confirmed example so far
    found_x: np.ndarray                # float32, one example per found id
    successes: dict[str, int] = field(default_factory=dict)
    aa_robust: np.ndarray | None = None  # bool: robust to autoattack-standard alone


@dataclass
class ChunkEvidence:
    lo: int
    hi: int
    radii: dict[str, RadiusEvidence] = field(default_factory=dict)  # key: "<prefix><label>"
    forward: dict[str, int] = field(default_factory=dict)
    backward: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: int = 0
    # Why the chunk's attacks did not finish (the standard's time limit), else "".
    cut: str = ""

    def add(self, attack: str, fwd: int, bwd: int, seconds: float) -> None:
        self.forward[attack] = self.forward.get(attack, 0) + fwd
        self.backward[attack] = self.backward.get(attack, 0) + bwd
        self.seconds[attack] = self.seconds.get(attack, 0.0) + seconds

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        radii_meta: dict[str, Any] = {}
        for i, (key, r) in enumerate(self.radii.items()):
            arrays[f"{i}.robust"] = r.robust.astype(bool)
            arrays[f"{i}.broken_by"] = np.asarray(r.broken_by, dtype=str)
            arrays[f"{i}.found_index"] = r.found_index.astype(np.int64)
            arrays[f"{i}.found_x"] = r.found_x.astype(np.float32)
            if r.aa_robust is not None:
                arrays[f"{i}.aa_robust"] = r.aa_robust.astype(bool)
            radii_meta[key] = {"slot": i, "successes": r.successes}
        meta = {"lo": self.lo, "hi": self.hi, "radii": radii_meta, "forward": self.forward,
                "backward": self.backward, "seconds": self.seconds, "skipped": self.skipped,
                "rejected": self.rejected, "cut": self.cut}
        arrays["meta"] = np.asarray(json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChunkEvidence:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            radii = {}
            for key, m in meta["radii"].items():
                i = m["slot"]
                radii[key] = RadiusEvidence(
                    robust=npz[f"{i}.robust"], broken_by=npz[f"{i}.broken_by"].astype(object),
                    found_index=npz[f"{i}.found_index"], found_x=npz[f"{i}.found_x"],
                    successes={k: int(v) for k, v in m["successes"].items()},
                    aa_robust=npz[f"{i}.aa_robust"] if f"{i}.aa_robust" in npz.files else None)
        return cls(meta["lo"], meta["hi"], radii, meta["forward"], meta["backward"],
                   meta["seconds"], meta["skipped"], int(meta["rejected"]),
                   meta.get("cut", ""))


@dataclass
class MergedRadius:
    robust: np.ndarray
    broken_by: np.ndarray
    examples: dict[str, np.ndarray]    # {"index", "x_adv"}
    successes: dict[str, int]
    aa_robust: np.ndarray | None


def merge(chunks: list[ChunkEvidence], n: int, sample_shape: tuple[int, ...]
          ) -> tuple[dict[str, MergedRadius], ChunkEvidence]:
    """Per-sample arrays over all ``n`` samples per radius key, and the summed tallies.

    Chunks must tile [0, n) exactly: a missing or overlapping chunk is a planning bug that
    would silently change every figure, so it raises.
    """
    spans = sorted((c.lo, c.hi) for c in chunks)
    edges = [0] + [e for span in spans for e in span] + [n]
    if any(a != b for a, b in zip(edges[::2], edges[1::2], strict=True)):
        raise ValueError(f"attack chunks {spans} do not tile the {n} samples")
    total = ChunkEvidence(0, n)
    merged: dict[str, MergedRadius] = {}
    for c in sorted(chunks, key=lambda c: c.lo):
        for attack in c.forward:
            total.add(attack, c.forward[attack], c.backward.get(attack, 0),
                      c.seconds.get(attack, 0.0))
        total.skipped.update(c.skipped)
        total.rejected += c.rejected
        total.cut = total.cut or c.cut
        for key, r in c.radii.items():
            m = merged.get(key)
            if m is None:
                m = merged[key] = MergedRadius(
                    np.zeros(n, dtype=bool), np.full(n, "", dtype=object),
                    {"index": [], "x_adv": []}, {},
                    np.zeros(n, dtype=bool) if r.aa_robust is not None else None)
            m.robust[c.lo:c.hi] = r.robust
            m.broken_by[c.lo:c.hi] = r.broken_by
            if m.aa_robust is not None and r.aa_robust is not None:
                m.aa_robust[c.lo:c.hi] = r.aa_robust
            m.examples["index"].append(r.found_index)
            m.examples["x_adv"].append(r.found_x)
            for attack, k in r.successes.items():
                m.successes[attack] = m.successes.get(attack, 0) + k
    for m in merged.values():
        m.examples = {
            "index": np.concatenate(m.examples["index"]).astype(np.int64),
            "x_adv": np.concatenate(m.examples["x_adv"]).reshape(-1, *sample_shape)
            .astype(np.float32)}
    return merged, total
