"""``robustgate standards list|show|lint`` and ``robustgate metrics``: what a standard can say,
from the command line (real subprocesses, the installed catalogue)."""

from __future__ import annotations

import subprocess
import sys

from verifiers import catalogue


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_standards_list_and_show_every_version():
    listed = _run("standards", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("demo-digits", "hyatt-lee-baseline", "linf-8_255", "l2-0_5"):
        assert name in listed.stdout
    assert "versions: v1, v2" in listed.stdout and "[0, 1] (pixel intensity)" in listed.stdout
    old = _run("standards", "show", "demo-digits@1")
    assert old.returncode == 0 and "version: 1\n" in old.stdout
    assert "input_domain" not in old.stdout  # history is never rewritten
    assert "version: 2\n" in _run("standards", "show", "demo-digits").stdout
    missing = _run("standards", "show", "demo-digits@9")
    assert missing.returncode == 2 and "has no version '9'" in missing.stderr


def test_lint_refuses_typos_with_a_suggestion_and_warns_on_weak_documents(tmp_path):
    doc = ('name: x\nversion: 1\ninput_domain: {low: 0, high: 1, units: pixels}\n'
           'threat_model: {norm: linf, eps: [0.1]}\nfidelity_unit: relative\ncriteria:\n'
           '  - {metric: clean.acuracy, op: ">=", threshold: 0.9}\n'
           '  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.5}\n')
    path = tmp_path / "x.yaml"
    path.write_text(doc)
    typo = _run("standards", "lint", str(path))
    assert typo.returncode == 1 and "did you mean clean.accuracy?" in typo.stdout
    path.write_text(doc.replace("acuracy", "accuracy"))
    ok = _run("standards", "lint", str(path))
    assert ok.returncode == 0 and "0 error(s), 0 warning(s)" in ok.stdout, ok.stdout
    path.write_text(doc.replace("acuracy", "accuracy").replace("fidelity_unit: relative\n", "")
                    .replace("input_domain: {low: 0, high: 1, units: pixels}\n", ""))
    weak = _run("standards", "lint", str(path))
    assert weak.returncode == 1 and "error: no input_domain" in weak.stdout
    assert "warning: fidelity_unit is absolute" in weak.stdout
    assert _run("standards", "lint", str(tmp_path / "nope.yaml")).returncode == 2


def test_metrics_lists_every_declared_path():
    out = _run("metrics")
    assert out.returncode == 0
    for family in catalogue.catalogue().values():
        for spec in family.metrics:
            assert f"{family.check}.{spec.pattern}" in out.stdout
    assert "higher is better, upper bound" in out.stdout  # attacked robust accuracy
    assert "{score}: msp, max_logit, energy" in out.stdout
