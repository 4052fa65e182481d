"""Reasons people read: one cause stated once.

Reasons are joined in several places (a check's reason, the sanity findings, a criterion's
reason, the verdict's reasons). Joining them naively repeats a cause each time it reaches a
sentence by another path ("white-box attacks not possible (...)" four times).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def join_reasons(parts: Iterable[str | None], sep: str = "; ") -> str:
    """Non-empty parts joined once each, in order; a part already contained in an earlier
    one (or that contains an earlier one, which it then replaces) is not repeated."""
    kept: list[str] = []
    for part in parts:
        text = (part or "").strip()
        if not text or any(text in k for k in kept):
            continue
        kept = [k for k in kept if k not in text] + [text]
    return sep.join(kept)


def grouped(details: Mapping[str, str], sep: str = "; ") -> str:
    """``name: detail`` pairs with names sharing one detail merged: ``a, b: why``."""
    by_detail: dict[str, list[str]] = {}
    for name, detail in details.items():
        by_detail.setdefault(detail, []).append(name)
    return sep.join(f"{', '.join(names)}: {detail}" for detail, names in by_detail.items())
