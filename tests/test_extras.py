"""Extras and distributions resolve: `pip install --dry-run --report` (metadata only, nothing
downloaded beyond it, nothing installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIGHT_DEPS = {"robustgate-client", "httpx", "httpcore", "h11", "anyio", "sniffio", "idna",
              "certifi", "cryptography", "cffi", "pycparser", "typing-extensions",
              "exceptiongroup"}


def _dry_run(tmp_path: Path, *spec: str) -> list[tuple[str, str]]:
    report = tmp_path / "report.json"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                          "--disable-pip-version-check", "--report", str(report), *spec],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0 and "No matching distribution" in out.stderr:
        pytest.skip(f"package index unreachable: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr[-2000:]
    return [(i["metadata"]["name"].lower().replace("_", "-"), i["metadata"]["version"])
            for i in json.loads(report.read_text())["install"]]


def test_no_extra_installs_a_second_onnxruntime():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("onnxruntime>=") for d in project["dependencies"])
    for name, deps in project["optional-dependencies"].items():
        assert not any(d.startswith("onnxruntime") for d in deps), name


def test_extras_resolve_against_the_project(tmp_path):
    installs = _dry_run(tmp_path, ".[mlflow,test]")
    assert ("robustgate", "0.1.0") in installs


def test_the_documented_gpu_swap_resolves(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert 'pip install --force-reinstall --no-deps "onnxruntime-gpu>=1.20"' in readme
    installs = _dry_run(tmp_path, "--no-deps", "--ignore-installed", "onnxruntime-gpu>=1.20")
    assert [n for n, _ in installs] == ["onnxruntime-gpu"]


def test_light_client_needs_httpx_and_cryptography_only(tmp_path):
    installs = _dry_run(tmp_path, "--ignore-installed", "./client")
    names = {n for n, _ in installs}
    assert names <= LIGHT_DEPS, names - LIGHT_DEPS
    assert {"robustgate-client", "httpx", "cryptography"} <= names
