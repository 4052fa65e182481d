"""VNN-LIB through the product: ``robustgate verify`` and ``POST /v1/verifications``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from service.api import create_app
from service.auth import create_token
from service.db.migrate import upgrade
from tests.fixtures_service import clean_env, embedded_settings
from tests.test_bounds_vnnlib import robustness_vnnlib
from verifiers.model import load_model


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vnn")
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsMLP(hidden=32), x_tr, y_tr, epochs=10, seed=4)
    path = export_onnx(model, folder / "mlp.onnx")
    label = int(load_model(path.read_bytes()).runner.predict(x_ev[:1])[0])
    small = folder / "small.vnnlib"
    small.write_text(robustness_vnnlib(x_ev[0], 0.005, label, 10))
    large = folder / "large.vnnlib"
    large.write_text(robustness_vnnlib(x_ev[0], 0.6, label, 10))
    return path, small, large


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", "verify", *args],
                          capture_output=True, text=True, env=clean_env(), timeout=300)


def test_cli_answers_holds_and_violated_with_exit_codes(problem, tmp_path):
    model, small, large = problem
    holds = _cli(str(model), str(small), "--method", "crown")
    assert holds.returncode == 0 and holds.stdout.startswith("holds"), holds.stdout
    out = tmp_path / "r.json"
    violated = _cli(str(model), str(large), "--json", str(out))
    assert violated.returncode == 1 and violated.stdout.startswith("violated")
    record = json.loads(out.read_text())
    assert record["counterexample"] is not None and record["decided_by"] in ("sampling", "pgd")
    bad = _cli(str(model), str(model))  # an ONNX file is not a property
    assert bad.returncode == 2 and "robustgate: error:" in bad.stderr


def test_http_verification_and_its_bad_input(problem, tmp_path):
    model, small, large = problem
    settings = embedded_settings(tmp_path / "svc")
    upgrade(settings.database_url)
    app = create_app(settings)
    with app.state.services.db.session() as s:
        token = create_token(s, "vnn")
    client = TestClient(app)
    files = {"model": ("m.onnx", model.read_bytes()), "property": ("p.vnnlib", small.read_text())}
    assert client.post("/v1/verifications", files=files).status_code == 401
    client.headers["Authorization"] = f"Bearer {token}"
    r = client.post("/v1/verifications", files=files, data={"method": "crown"})
    assert r.status_code == 200 and r.json()["status"] == "holds", r.text
    files["property"] = ("p.vnnlib", large.read_text())
    r = client.post("/v1/verifications", files=files)
    body = r.json()
    assert body["status"] == "violated" and len(body["counterexample"]) == 1
    files["property"] = ("p.vnnlib", "(assert (<= X_0")
    r = client.post("/v1/verifications", files=files)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_property"
    r = client.post("/v1/verifications", files={"model": ("m.onnx", b"nope"),
                                                "property": ("p.vnnlib", small.read_text())})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_model"
    r = client.post("/v1/verifications", files=files, data={"method": "magic"})
    assert r.status_code == 422 and "magic" in r.json()["error"]["message"]
