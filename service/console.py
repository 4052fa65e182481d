"""Terminal output: a progress bar, verdict exit codes, writing the CI artifacts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from verifiers.report import render_junit, render_summary

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}
EXIT_ERROR = 2


class ProgressBar:
    """A redrawn bar on a terminal; one line per stage change in a CI log."""

    def __init__(self, stream=sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last: tuple[str, str] | None = None

    def update(self, job: dict[str, Any]) -> None:
        status, stage, fraction = job["status"], job.get("stage", ""), job.get("progress", 0.0)
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {fraction * 100:5.1f}%  {status:<9} {stage}"
        eta = job.get("estimate") or {}
        if eta.get("seconds_left") is not None:  # a running job's time left (the API's)
            line += f"  ~{eta['seconds_left']:.0f} s left ({eta.get('stage', '')})"
        if self.tty:
            self.stream.write("\r" + line.ljust(72))
            if status in ("succeeded", "errored", "cancelled"):
                self.stream.write("\n")
        elif self._last != (status, stage):
            self.stream.write(line + "\n")
        self._last = (status, stage)
        self.stream.flush()


def emit_results(card: dict[str, Any], junit: Path | None, json_out: Path | None) -> int:
    """Print the summary, write the requested artifacts, return the verdict's exit code."""
    sys.stdout.write(render_summary(card))
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(render_junit(card))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(card, indent=2, sort_keys=True))
    return EXIT_CODES.get(card.get("verdict", ""), EXIT_ERROR)


def fail(message: str) -> int:
    sys.stderr.write(f"robustgate: error: {message}\n")
    return EXIT_ERROR
