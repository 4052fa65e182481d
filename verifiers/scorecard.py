"""The scorecard: the versioned record of one certification run."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "1.1"  # 1.1: criterion confidence, interval, n_samples


@functools.cache
def git_revision() -> str | None:
    """The commit of the source tree: ROBUSTGATE_GIT_REVISION (images), else git, else None."""
    if revision := os.environ.get("ROBUSTGATE_GIT_REVISION"):
        return revision
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.cache  # read once: the installed version cannot change under a running process
def tool_version() -> str:
    try:
        return metadata.version("robustgate")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class CheckResult:
    """One check of the battery. ``status`` is ok, inconclusive or error."""

    name: str
    status: str = "ok"
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "metrics": self.metrics,
                "details": self.details, "seconds": round(self.seconds, 4)}


def hardware() -> dict[str, Any]:
    """The machine; the device the run used is added by verifiers.device.describe."""
    import torch

    return {"machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__}


def flat_metrics(checks: dict[str, CheckResult]) -> dict[str, Any]:
    """``check.metric`` -> value, the paths criteria refer to."""
    return {f"{name}.{key}": value for name, check in checks.items()
            for key, value in check.metrics.items()}
