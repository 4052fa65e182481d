"""Shared by the light-client, Action and export tests: quick standards, a tenant, one run.

The light client is imported from ``client/src`` (where it lives in this repository) and run
as ``python -m robustgate_client`` with that folder on PYTHONPATH; tests/test_light_client.py
also installs it into a fresh virtual environment, the way users get it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIENT_SRC = ROOT / "client" / "src"
if str(CLIENT_SRC) not in sys.path:
    sys.path.insert(0, str(CLIENT_SRC))

MODEL = ROOT / "examples" / "digits_cnn.onnx"

_QUICK = """\
name: {name}
version: 1
description: Quick standard for the integration tests (two attacks, small budgets).
input_domain: {{low: 0.0, high: 1.0, units: pixel intensity}}
threat_model: {{norm: linf, eps: ["0.05", "0.1"]}}
budget:
  preset: quick
  pgd: {{steps: 10, restarts: 1}}
  apgd-ce: {{iterations: 10}}
  sanity: {{points: 16, stronger_factor: 2}}
attacks: [pgd, apgd-ce]
fidelity_tolerance: 1.0e-4
criteria:
  - {{metric: clean.accuracy, op: ">=", threshold: {clean}}}
  - {{metric: adversarial.robust_accuracy@0.05, op: ">=", threshold: 0.5}}
  - {{metric: calibration.ece, op: "<=", threshold: 0.5, severity: advisory}}
"""
PASS_STANDARD = _QUICK.format(name="lc-pass", clean=0.9)
FAIL_STANDARD = _QUICK.format(name="lc-fail", clean=0.9999)
# A required criterion on the user's own OOD set, with none uploaded: not obtained.
INCONCLUSIVE_STANDARD = _QUICK.format(name="lc-inconclusive", clean=0.9).replace(
    "severity: advisory}", "severity: advisory}\n  - {metric: ood.user.auroc.msp, op: \">=\", "
    "threshold: 0.5}")


@dataclass(frozen=True)
class Tenant:
    url: str
    token: str
    model: Path
    data: Path


def make_tenant(server, name: str, folder: Path) -> Tenant:
    """A tenant with the two quick standards and a 120-sample evaluation set."""
    token = server.token(name)
    headers = {"Authorization": f"Bearer {token}"}
    for doc in (PASS_STANDARD, FAIL_STANDARD, INCONCLUSIVE_STANDARD):
        r = httpx.post(f"{server.url}/v1/standards", content=doc, headers=headers, timeout=60)
        assert r.status_code in (200, 201), r.text
    data = np.load(ROOT / "examples" / "digits_eval.npz")
    folder.mkdir(parents=True, exist_ok=True)
    eval_set = folder / "eval.npz"
    np.savez(eval_set, x=data["x"][:120], y=data["y"][:120])
    return Tenant(server.url, token, MODEL, eval_set)


def light_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    from tests.fixtures_service import clean_env

    run_env = (env if env is not None else clean_env()) | {"PYTHONPATH": str(CLIENT_SRC)}
    return subprocess.run([sys.executable, "-m", "robustgate_client", *args], env=run_env,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)
