"""``robustgate certify`` (no server) and the CLI's error handling and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures_service import clean_env
from tests.unfaithful import conversion_gap, make_unfaithful

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, env=clean_env(), timeout=600, cwd=cwd)


def test_certify_in_process_exit_codes_follow_the_verdict(digits, tmp_path):
    passed = _run("certify", str(digits.robust_model), "--data", str(digits.eval_set),
                  "--standard", "demo-digits", "--json", str(tmp_path / "card.json"))
    assert passed.returncode == 0, passed.stderr
    assert (tmp_path / "card.json").read_text().count('"verdict": "PASS"') == 1
    failed = _run("certify", str(digits.brittle_model), "--data", str(digits.eval_set),
                  "--standard", "demo-digits")
    assert failed.returncode == 1 and "VERDICT: FAIL" in failed.stdout


def test_untrusted_conversion_is_inconclusive_never_pass(digits, tmp_path):
    """A model whose torch conversion really disagrees with onnxruntime (by design, see
    tests/unfaithful.py; not float noise, which can be exactly zero on some CPUs): the
    white-box evidence is missing, so the attack criteria come out INCONCLUSIVE (exit 2), not
    PASS, although onnxruntime's clean accuracy is the robust model's."""
    model = make_unfaithful(digits.robust_model, tmp_path / "unfaithful.onnx")
    diff, span = conversion_gap(model, digits.x)
    assert diff >= 0.1 * span and diff >= 1.0, (diff, span)   # O(1), also relative to logits
    text = (ROOT / "standards" / "demo-digits.yaml").read_text()
    # Without the fidelity criterion (it would FAIL the run): only the attack criteria decide.
    lenient = text.replace("- {metric: fidelity.max_rel_diff", "# ")
    assert lenient != text
    path = tmp_path / "no-fidelity-criterion.yaml"
    path.write_text(lenient)
    result = _run("certify", str(model), "--data", str(digits.eval_set),
                  "--standard", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "VERDICT: INCONCLUSIVE" in result.stdout
    assert "white-box results are not trusted" in result.stdout


def test_cli_errors_are_messages_with_exit_code_2(digits, tmp_path):
    missing = _run("certify", str(tmp_path / "nope.onnx"), "--data", str(digits.eval_set),
                   "--standard", "demo-digits")
    assert missing.returncode == 2 and "model file not found" in missing.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    refused = _run("certify", str(bad), "--data", str(digits.eval_set),
                   "--standard", "demo-digits")
    assert refused.returncode == 2 and "robustgate: error:" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = _run("certify", str(digits.robust_model), "--data", str(digits.eval_set),
                   "--standard", "nope")
    assert unknown.returncode == 2 and "unknown standard 'nope'" in unknown.stderr
    no_server = _run("submit", str(digits.robust_model), "--data", str(digits.eval_set),
                     "--standard", "demo-digits", "--server", "http://127.0.0.1:9",
                     "--token", "rg_x")
    assert no_server.returncode == 2 and "cannot reach the server" in no_server.stderr


def test_demo_runs_the_shipped_example_end_to_end():
    """The README's first command, minus the install: embedded service, example model, PASS."""
    result = _run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERDICT: PASS" in result.stdout
    assert "succeeded" in result.stderr  # the progress bar reached the end
