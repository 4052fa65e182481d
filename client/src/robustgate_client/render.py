"""Plain-text summary of a scorecard (the full CLI's table), and JUnit from the server."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def summary(card: dict[str, Any]) -> str:
    std, data = card.get("standard", {}), card.get("dataset", {})
    lines = [
        f"standard  {std.get('name')} v{std.get('version')} ({str(std.get('sha256'))[:12]})",
        f"model     {str(card.get('model', {}).get('sha256'))[:12]}  dataset "
        f"{str(data.get('sha256'))[:12]} ({data.get('n_samples')} samples)",
        "",
        f"{'criterion':<48} {'value':>10} {'threshold':>12} {'margin':>10}  result",
    ]
    for c in card.get("criteria", []):
        value = "-" if c.get("value") is None else f"{c['value']:.4g}"
        margin = "-" if c.get("margin") is None else f"{c['margin']:+.4g}"
        sev = "" if c.get("severity") == "required" else " (advisory)"
        bound = f"{c.get('op')} {c.get('threshold'):g}"
        lines.append(f"{c['metric']:<48} {value:>10} {bound:>12} {margin:>10}  "
                     f"{c['result']}{sev}")
        if c["result"] == "INCONCLUSIVE":
            lines.append(f"    reason: {c.get('reason')}")
    lines += ["", f"VERDICT: {card.get('verdict')}"]
    lines += [f"  - {r}" for r in card.get("verdict_reasons", [])]
    return "\n".join(lines) + "\n"


def junit_from_server(client: Any, job_id: str, path: Path) -> None:
    """The server's JUnit rendering (one testcase per criterion)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(client.report(job_id, "xml"))
