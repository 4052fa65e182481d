"""``robustgate certify --report DIR``: the real pipeline, in a subprocess, writes every report.

:func:`certified_run` runs it once per test session; the other report and certificate tests
read the scorecard it produced (a real one, from the real battery on the example model).
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tests.fixtures_service import clean_env

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "digits_cnn.onnx"
N_SAMPLES = 40

# Few attacks and small budgets keep the run to seconds; three radii make a real curve; the
# criteria cover a PASS, an advisory FAIL and a metric no check produces (INCONCLUSIVE).
QUICK_STANDARD = """\
name: report-test
version: 1
description: Quick standard for the report tests (two attacks, small budgets).
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.05", "0.1", "0.2"]}
budget:
  preset: quick
  pgd: {steps: 10, restarts: 1}
  apgd-ce: {iterations: 10}
  sanity: {points: 16, stronger_factor: 2}
attacks: [pgd, apgd-ce]
fidelity_tolerance: 1.0e-4
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.9}
  - {metric: fidelity.max_abs_diff, op: "<=", threshold: 1.0e-4}
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.5}
  - {metric: adversarial.robust_accuracy@0.2, op: ">=", threshold: 0.99, severity: advisory}
  - {metric: calibration.ece, op: "<=", threshold: 0.2, severity: advisory}
  - {metric: ood.uniform_noise.auroc.msp, op: ">=", threshold: 0.5, severity: advisory}
  - {metric: certified.certified_accuracy@0.1, op: ">=", threshold: 0.1, severity: advisory}
  - {metric: ood.user.auroc.msp, op: ">=", threshold: 0.9, severity: advisory}
"""


@dataclass(frozen=True)
class CertifiedRun:
    folder: Path          # what --report wrote
    card: dict            # the scorecard (--json)
    model: Path
    eval_set: Path
    result: subprocess.CompletedProcess


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, env=clean_env(), timeout=timeout)


@lru_cache(maxsize=1)
def certified_run() -> CertifiedRun:
    work = Path(tempfile.mkdtemp(prefix="rg-report-"))
    atexit.register(shutil.rmtree, work, True)
    data = np.load(ROOT / "examples" / "digits_eval.npz")
    eval_set = work / "eval.npz"
    np.savez(eval_set, x=data["x"][:N_SAMPLES], y=data["y"][:N_SAMPLES])
    standard = work / "report-test.yaml"
    standard.write_text(QUICK_STANDARD)
    result = cli("certify", str(MODEL), "--data", str(eval_set), "--standard", str(standard),
                 "--report", str(work / "report"), "--json", str(work / "card.json"))
    assert result.returncode in (0, 1, 2) and (work / "card.json").is_file(), \
        result.stdout + result.stderr
    return CertifiedRun(work / "report", json.loads((work / "card.json").read_text()), MODEL,
                        eval_set, result)


def test_certify_report_writes_every_rendering_of_the_same_verdict():
    run = certified_run()
    card = run.card
    assert run.result.returncode == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}[card["verdict"]]
    names = sorted(p.name for p in run.folder.iterdir())
    # In-process runs have no service key: no certificate, and the report says so.
    assert names == ["adversarial.npz", "report.html", "report.md", "report.svg", "report.xml",
                     "scorecard.json"]
    assert json.loads((run.folder / "scorecard.json").read_text()) == card
    html = (run.folder / "report.html").read_text()
    assert f'data-verdict="{card["verdict"]}"' in html and "not signed" in html
    assert html.count('class="plot"') >= 3
    md = (run.folder / "report.md").read_text()
    assert f"**{card['verdict']}**" in md and "`report-test` v1" in md
    badge = ET.fromstring((run.folder / "report.svg").read_text())
    assert badge.get("data-verdict") == card["verdict"]
    suite = ET.parse(run.folder / "report.xml").getroot().find("testsuite")
    assert len(suite.findall("testcase")) == len(card["criteria"]) == 8
    # A criterion on a metric no check produced is INCONCLUSIVE, and shown as such everywhere.
    missing = next(c for c in card["criteria"] if c["metric"] == "ood.user.auroc.msp")
    assert missing["result"] == "INCONCLUSIVE" and missing["value"] is None
    assert "| ❔ | `ood.user.auroc.msp` | - |" in md.split("**Advisory**")[1]
    assert ('data-result="INCONCLUSIVE" data-severity="advisory" class="advisory"><td><code>'
            'ood.user.auroc.msp</code>') in html
    # The examples file holds what the scorecard keeps, each re-checkable on the model.
    with np.load(run.folder / "adversarial.npz") as npz:
        kept = card["checks"]["adversarial"]["details"]["examples"]["radii"]
        assert len(npz["index"]) == sum(len(r.get("examples", [])) for r in kept) > 0
        assert npz["x_adv"].shape[1:] == npz["x"].shape[1:] == (1, 8, 8)
        assert np.all(npz["adv_pred"] != npz["label"])
        assert np.all(np.abs(npz["x_adv"] - npz["x"]).reshape(len(npz["x"]), -1).max(1)
                      <= npz["eps"] + 1e-6)
