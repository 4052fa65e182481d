"""The light client (``client/``): its Python API and console script against a real
``robustgate serve``, the same exit codes as the full CLI, the same certificate verdicts as
``robustgate verify-certificate``, and a fresh-venv install with no torch/numpy/onnxruntime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robustgate_client import ApiError, Client, Result, ServerUnreachable
from robustgate_client import certificate as light_cert

from tests.lightclient_support import CLIENT_SRC, ROOT, light_cli, make_tenant


@pytest.fixture(scope="module")
def tenant(embedded_server, tmp_path_factory):
    return make_tenant(embedded_server, "light", tmp_path_factory.mktemp("light"))


@pytest.fixture(scope="module")
def passed(tenant, tmp_path_factory) -> tuple[Result, Path]:
    """One PASS run through the Python API; its reports downloaded."""
    folder = tmp_path_factory.mktemp("light-reports")
    with Client(tenant.url, tenant.token) as rg:
        cert = rg.submit(tenant.model, tenant.data, "lc-pass")
        result = cert.wait(timeout=600, poll=0.5)
        cert.download_reports(folder)
    return result, folder


def test_python_api_submit_wait_returns_verdict_and_scorecard(passed, tenant):
    result, folder = passed
    assert result.verdict == "PASS" and result.passed and result.exit_code == 0
    assert result.scorecard["verdict"] == "PASS"
    assert result.scorecard["standard"]["name"] == "lc-pass"
    assert {c["metric"] for c in result.criteria} >= {"clean.accuracy"}
    assert sorted(p.name for p in folder.iterdir()) == [
        "certificate.json", "report.html", "report.md", "report.svg", "report.xml",
        "scorecard.json"]
    with Client(tenant.url, tenant.token) as rg:
        assert rg.status(result.id)["status"] == "succeeded"
        assert rg.list_certifications()["total"] >= 1
        with pytest.raises(ApiError) as err:
            rg.status("no-such-id")
        assert err.value.status == 404
    with Client(tenant.url, "rg_wrong") as rg, pytest.raises(ApiError) as err:
        rg.status(result.id)
    assert err.value.status == 401 and "check the token" in str(err.value)
    with Client("http://127.0.0.1:9", tenant.token) as rg, pytest.raises(ServerUnreachable):
        rg.status(result.id)


def test_console_script_exit_codes_match_the_full_cli(passed, tenant, embedded_server,
                                                      tmp_path):
    result, _ = passed
    env_args = ("--server", tenant.url, "--token", tenant.token)
    ok = light_cli("submit", str(tenant.model), "--data", str(tenant.data),
                   "--standard", "lc-pass", "--wait", "--junit", str(tmp_path / "j.xml"),
                   *env_args)
    assert ok.returncode == 0, ok.stderr
    assert "VERDICT: PASS" in ok.stdout and (tmp_path / "j.xml").read_text().startswith("<?xml")
    bad = light_cli("submit", str(tenant.model), "--data", str(tenant.data),
                    "--standard", "lc-fail", "--report", str(tmp_path / "rep"), *env_args)
    assert bad.returncode == 1, bad.stderr
    assert "VERDICT: FAIL" in bad.stdout and (tmp_path / "rep" / "report.md").is_file()
    fail_id = json.loads((tmp_path / "rep" / "scorecard.json").read_text())
    # The full CLI agrees on the same submission (the server returns the same certification).
    full = embedded_server.cli("submit", str(tenant.model), "--data", str(tenant.data),
                               "--standard", "lc-fail", "--wait", *env_args, check=False)
    assert full.returncode == bad.returncode
    assert fail_id["verdict"] == "FAIL"

    # No --wait: prints the id; wait / status / scorecard / reports on it.
    queued = light_cli("submit", str(tenant.model), "--data", str(tenant.data),
                       "--standard", "lc-pass", *env_args)
    assert queued.returncode == 0 and queued.stdout.strip() == result.id
    assert light_cli("wait", result.id, *env_args).returncode == 0
    status = light_cli("status", result.id, *env_args)
    assert json.loads(status.stdout)["status"] == "succeeded"
    card = light_cli("scorecard", result.id, *env_args)
    assert card.returncode == 0 and json.loads(card.stdout)["verdict"] == "PASS"
    rep = light_cli("reports", result.id, str(tmp_path / "r2"), *env_args)
    assert rep.returncode == 0 and (tmp_path / "r2" / "certificate.json").is_file()

    # Errors: one line, exit 2, no traceback.
    for args in (("status", result.id, "--server", "http://127.0.0.1:9", "--token", "rg_x"),
                 ("status", result.id, "--server", tenant.url, "--token", "rg_x"),
                 ("submit", "nope.onnx", "--data", str(tenant.data), "--standard", "x",
                  *env_args)):
        err = light_cli(*args)
        assert err.returncode == 2 and "Traceback" not in err.stderr, err.stderr
        assert err.stderr.startswith("robustgate-client: error:")
    assert "--version" in light_cli("--help").stdout
    assert light_cli("--version").stdout.startswith("robustgate-client ")


def _both_verify(embedded_server, cert: Path, model: Path, *extra: str) -> tuple[int, int]:
    args = ("verify-certificate", str(cert), "--model", str(model), *extra)
    light = light_cli(*args)
    full = embedded_server.cli(*args, check=False)
    assert "Traceback" not in light.stderr + full.stderr
    # Same verdict and the same failed part, word for word.
    assert light.stdout.splitlines()[-1:] == full.stdout.splitlines()[-1:] \
        or light.returncode == full.returncode == 2, (light.stdout, full.stdout)
    return light.returncode, full.returncode


def test_verify_certificate_agrees_with_the_full_cli(passed, embedded_server, tmp_path):
    _, folder = passed
    cert, model = folder / "certificate.json", ROOT / "examples" / "digits_cnn.onnx"
    keys = tmp_path / "keys.json"
    with Client(embedded_server.url) as rg:
        keys.write_text(json.dumps(rg.keys()))
    pin = ("--public-key", str(keys))
    assert _both_verify(embedded_server, cert, model, *pin) == (0, 0)
    assert _both_verify(embedded_server, cert, model, "--server", embedded_server.url) == (0, 0)
    assert _both_verify(embedded_server, cert, model, *pin, "--standard", "lc-pass") == (0, 0)
    assert _both_verify(embedded_server, cert, model, *pin, "--standard", "other") == (1, 1)

    doc = json.loads(cert.read_text())
    doc["scorecard"]["metrics"]["clean.accuracy"] = 1.0
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    assert _both_verify(embedded_server, tampered, model, *pin) == (1, 1)
    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(model.read_bytes() + b"\0")
    assert _both_verify(embedded_server, cert, other_model, *pin) == (1, 1)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from verifiers.certificate import public_key_entry
    stranger = tmp_path / "stranger.json"
    stranger.write_text(json.dumps({"keys": [public_key_entry(
        Ed25519PrivateKey.generate().public_key())]}))
    assert _both_verify(embedded_server, cert, model, "--public-key", str(stranger)) == (1, 1)
    dup = tmp_path / "dup.json"
    dup.write_text(cert.read_text().replace("{", '{"key_id": "x", ', 1))
    assert _both_verify(embedded_server, dup, model, *pin) == (1, 1)
    assert _both_verify(embedded_server, tmp_path / "missing.json", model, *pin) == (2, 2)


def test_canonical_json_is_byte_identical_to_the_servers():
    from verifiers.certificate import canonical_json

    samples = [{"b": 1, "a": [1.0, 0.1, 1e-7, 3, True, None, "é ✓"], "c": {"z": {}, "y": []}},
               {"x": 2.5e300, "n": -0.0, "s": "\u2028\"\\"}]
    for value in samples:
        assert light_cert.canonical_json(value) == canonical_json(value)
    with pytest.raises(ValueError):
        light_cert.canonical_json({"a": float("nan")})


def test_fresh_venv_installs_the_light_client_in_seconds(passed, tenant, tmp_path):
    """`python -m venv` + `pip install ./client`: httpx and cryptography only, then the console
    script against the real server, and offline verification of its certificate."""
    result, folder = passed
    src = tmp_path / "client"
    shutil.copytree(ROOT / "client", src, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, script = venv / "bin" / "python", venv / "bin" / "robustgate-client"
    start = time.monotonic()
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)],
                             capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    assert install.returncode == 0, install.stdout + install.stderr
    print(f"light client install: {seconds:.1f} s")
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    for heavy in ("torch", "numpy", "onnxruntime", "onnx=", "fastapi", "sqlalchemy"):
        assert heavy not in freeze, freeze
    assert seconds < 120, f"install took {seconds:.0f} s"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "ROBUSTGATE_SERVER": tenant.url,
           "ROBUSTGATE_TOKEN": tenant.token, "HOME": str(tmp_path)}
    run = subprocess.run([str(script), "submit", str(tenant.model), "--data", str(tenant.data),
                          "--standard", "lc-pass", "--wait"], env=env, capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0 and "VERDICT: PASS" in run.stdout, run.stderr
    verify = subprocess.run([str(script), "verify-certificate", str(folder / "certificate.json"),
                             "--model", str(tenant.model), "--server", tenant.url], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert verify.returncode == 0 and "VALID" in verify.stdout, verify.stdout + verify.stderr
    imported = subprocess.run(
        [str(py), "-c", "import sys, robustgate_client.cli; "
                        "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"],
        capture_output=True, text=True, check=True, cwd=tmp_path)
    assert imported.stdout.strip() == "[]"
    assert str(CLIENT_SRC) not in run.stderr
