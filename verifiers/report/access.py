"""Defensive reads of a scorecard: the reports show whatever is there and skip what is not.

Checks keep being added and extended, so every reader here accepts a missing or oddly shaped
section and returns None / empty instead of raising.
"""

from __future__ import annotations

import math
from typing import Any


def dig(data: Any, *path: str | int) -> Any:
    """``data[p0][p1]...`` or None where any step is missing or of the wrong kind."""
    for key in path:
        if isinstance(data, dict) and isinstance(key, str):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return None
    return data


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def check(card: dict[str, Any], name: str) -> dict[str, Any] | None:
    found = dig(card, "checks", name)
    return found if isinstance(found, dict) else None


def metric(card: dict[str, Any], path: str) -> float | None:
    """A flat metric ``check.key``, from ``metrics`` or the check itself."""
    value = number(dig(card, "metrics", path))
    if value is None and "." in path:
        name, key = path.split(".", 1)
        value = number(dig(card, "checks", name, "metrics", key))
    return value


def check_metrics(card: dict[str, Any], name: str) -> dict[str, Any]:
    found = dig(card, "checks", name, "metrics")
    return found if isinstance(found, dict) else {}


def fmt(value: Any, digits: int = 4) -> str:
    """A value for a table cell: numbers to ``digits`` significant digits, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def fmt_margin(value: Any) -> str:
    return "-" if number(value) is None else f"{value:+.4g}"


def fmt_interval(criterion: dict[str, Any]) -> str:
    """A criterion's confidence interval for a table cell ("[0.781, 0.872] 95% n=300"), or
    "" when the criterion was judged on its point value."""
    interval, level = criterion.get("interval"), number(criterion.get("confidence"))
    if not isinstance(interval, list) or len(interval) != 2 or level is None:
        return ""
    n = criterion.get("n_samples")
    return (f"[{fmt(number(interval[0]), 3)}, {fmt(number(interval[1]), 3)}] "
            f"{level * 100:g}%" + (f" n={n}" if isinstance(n, int) else ""))


def short(digest: Any, n: int = 12) -> str:
    return str(digest)[:n] if digest else "-"
