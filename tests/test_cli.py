"""``robustgate certify`` (no server) and the CLI's error handling and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures_service import clean_env

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
    """With a fidelity tolerance no float32 conversion meets, white-box evidence is missing:
    the attack criterion must come out INCONCLUSIVE (exit 2), not PASS."""
    text = (ROOT / "standards" / "demo-digits.yaml").read_text()
    strict = text.replace("fidelity_tolerance: 1.0e-4", "fidelity_tolerance: 1.0e-12")
    strict = strict.replace("- {metric: fidelity.max_abs_diff", "# ")
    assert strict != text
    path = tmp_path / "strict.yaml"
    path.write_text(strict)
    result = _run("certify", str(digits.robust_model), "--data", str(digits.eval_set),
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
