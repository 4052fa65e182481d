"""`robustgate --version`; configuration and connection errors are one line each, exit 2, no
traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import ConfigError, load_settings
from tests.fixtures_service import clean_env


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True,
                          text=True, env=clean_env() | env, timeout=120)


def test_version():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.startswith("robustgate ")


def test_every_bad_variable_is_one_line():
    with pytest.raises(ConfigError) as err:
        load_settings({"ROBUSTGATE_MAX_UPLOAD_BYTES": "lots",
                       "ROBUSTGATE_DATABASE_URL": "mysql://u:secret@h/db",
                       "ROBUSTGATE_HEARTBEAT_SECONDS": "-1"})
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 3 and "secret" not in str(err.value)
    assert any(line.strip().startswith("ROBUSTGATE_MAX_UPLOAD_BYTES='lots'") for line in lines)
    assert load_settings({"ROBUSTGATE_MAX_ATTEMPTS": ""}).max_attempts == 3


def test_bad_env_var_exits_2_without_traceback(tmp_path):
    out = _run("migrate", ROBUSTGATE_DATA_DIR=str(tmp_path), ROBUSTGATE_MAX_ATTEMPTS="zero")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "ROBUSTGATE_MAX_ATTEMPTS='zero'" in out.stderr


def test_unreachable_postgres_exits_2_with_one_line(tmp_path):
    for command in (("migrate",), ("token", "create", "--tenant", "a"),
                    ("serve", "--port", "1", "--workers", "0")):
        out = _run(*command, ROBUSTGATE_DATA_DIR=str(tmp_path),
                   ROBUSTGATE_DATABASE_URL="postgresql://u:pw@127.0.0.1:1/x")
        assert out.returncode == 2, out.stderr
        errors = [line for line in out.stderr.splitlines() if "robustgate: error:" in line]
        assert len(errors) == 1 and "Traceback" not in out.stderr
        assert "cannot use the database at postgresql://u:***@127.0.0.1:1/x" in errors[0]


def test_the_cli_and_certificate_check_start_without_torch():
    """Every CLI call used to import torch (seconds per call, and `verify-certificate`
    offline): the command table, the HTTP client and the certificate check must stay light;
    the battery is imported only by the commands that run it."""
    probe = ("import sys, service.cli, service.client, verifiers, verifiers.certificate, "
             "verifiers.report; "
             "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_api_starts_without_torch():
    """The API validates uploads with onnx and onnxruntime; the battery and the bound engine
    (torch) belong to the workers and load in the API only on a first verification call."""
    probe = "import sys, service.api, service.serve; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
