"""The whole path on the embedded default: HTTP API, filesystem broker, real worker process."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import httpx
import pytest

from service.client import Client, ClientError
from verifiers import get_builtin


def test_cli_submit_wait_passes_robust_model_and_writes_junit(embedded_server, digits, tmp_path):
    token = embedded_server.token("acme")
    junit = tmp_path / "out.xml"
    result = embedded_server.cli(
        "submit", str(digits.robust_model), "--data", str(digits.eval_set),
        "--standard", "demo-digits", "--server", embedded_server.url, "--token", token,
        "--wait", "--junit", str(junit), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VERDICT: PASS" in result.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert len(suite.findall("testcase")) == len(get_builtin("demo-digits").criteria)


def test_brittle_model_fails_with_exit_code_1(embedded_server, digits):
    token = embedded_server.token("acme")
    result = embedded_server.cli(
        "submit", str(digits.brittle_model), "--data", str(digits.eval_set),
        "--standard", "demo-digits", "--server", embedded_server.url, "--token", token, "--wait",
        check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VERDICT: FAIL" in result.stdout
    assert "adversarial.robust_accuracy@0.1" in result.stdout


def test_scorecard_over_http_records_hashes_progress_and_listing(embedded_server, digits):
    token = embedded_server.token("scorecard-tenant")
    with Client(embedded_server.url, token) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=7)
        assert job["status"] == "queued"
        seen = []
        done = client.wait(job["id"], lambda j: seen.append(j["status"]), timeout=300)
        card = client.scorecard(job["id"])
        page = httpx.get(f"{embedded_server.url}/v1/certifications?limit=1",
                         headers={"Authorization": f"Bearer {token}"}).json()
    assert done["status"] == "succeeded" and done["verdict"] == card["verdict"] == "PASS"
    assert done["progress"] == 1.0 and seen[-1] == "succeeded"
    assert card["model"]["sha256"] == hashlib.sha256(digits.robust_model.read_bytes()).hexdigest()
    assert card["dataset"]["sha256"] == hashlib.sha256(digits.eval_set.read_bytes()).hexdigest()
    assert card["seed"] == 7 and card["standard"]["name"] == "demo-digits"
    assert card["tool"]["version"] and card["timings"]["total_seconds"] > 0
    assert card["robustbench"]["clean_acc"] == card["metrics"]["clean.accuracy"]
    assert page["total"] == 1 and page["items"][0]["id"] == job["id"]


def test_openapi_docs_health_and_standards_are_served(embedded_server):
    assert httpx.get(f"{embedded_server.url}/healthz").json()["database"] == "sqlite"
    assert httpx.get(f"{embedded_server.url}/docs").status_code == 200
    paths = httpx.get(f"{embedded_server.url}/openapi.json").json()["paths"]
    assert {"/v1/certifications", "/v1/certifications/{job_id}", "/v1/standards"} <= set(paths)
    names = [s["name"] for s in httpx.get(f"{embedded_server.url}/v1/standards").json()]
    assert "demo-digits" in names


def test_user_ood_set_travels_through_the_service(embedded_server, digits, tmp_path):
    """An uploaded OOD set becomes the `user` suite of the ood check; a bad one is a 422."""
    import numpy as np

    rng = np.random.default_rng(0)
    ood = tmp_path / "ood.npz"
    np.savez(ood, x=rng.random((40, 1, 8, 8), dtype=np.float32))
    token = embedded_server.token("ood-tenant")
    with Client(embedded_server.url, token) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", ood=ood)
        assert job["ood_dataset"]["n_samples"] == 40
        assert client.wait(job["id"], timeout=300)["status"] == "succeeded"
        card = client.scorecard(job["id"])
        bad = tmp_path / "bad.npz"
        np.savez(bad, x=rng.random((5, 3, 8, 8), dtype=np.float32))
        with pytest.raises(ClientError) as err:
            client.submit(digits.robust_model, digits.eval_set, "demo-digits", ood=bad)
    assert "user.auroc.msp" in card["checks"]["ood"]["metrics"]
    assert err.value.status == 422 and "OOD set refused" in str(err.value)


def test_identical_submission_returns_the_existing_result(embedded_server, digits):
    token = embedded_server.token("dedupe")
    headers = {"Authorization": f"Bearer {token}"}

    def post(seed: int) -> httpx.Response:
        files = {"model": ("m.onnx", digits.robust_model.read_bytes()),
                 "data": ("d.npz", digits.eval_set.read_bytes())}
        return httpx.post(f"{embedded_server.url}/v1/certifications", files=files,
                          data={"standard": "demo-digits", "seed": str(seed)}, headers=headers,
                          timeout=60)

    first = post(5)
    assert first.status_code == 202 and first.headers["x-robustgate-reused"] == "false"
    with Client(embedded_server.url, token) as client:
        client.wait(first.json()["id"], timeout=300)
    again = post(5)
    assert again.status_code == 200 and again.headers["x-robustgate-reused"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "succeeded"
    other = post(6)  # another seed is another experiment
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
