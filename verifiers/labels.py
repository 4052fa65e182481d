"""Numbers written the way people write radii: ``0.1``, ``"8/255"``; the label is kept."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any


def labelled_number(raw: Any) -> tuple[float, str]:
    """(value, label) of a number or a numeric string such as ``"8/255"``; ValueError if it
    is not a finite number."""
    try:
        if isinstance(raw, str):
            label = raw.replace(" ", "")
            value = float(Fraction(label))
        elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
            label = format(value, "g")
        else:
            raise TypeError(type(raw).__name__)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise ValueError(f"{raw!r} is not a number") from exc
    if not math.isfinite(value):
        raise ValueError(f"{raw!r} is not finite")
    return value, label
