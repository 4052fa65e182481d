"""Reports, certificates, keys and schema over HTTP, and the CLI that uses them.

A real ``robustgate serve`` with no worker: the test does the worker's part itself through the
real job store (claim, then ``succeed`` with a real scorecard), so a job can be held queued
(409) and finished on cue without running the whole battery again. The worker-side key is
loaded the way a worker process loads it: from ROBUSTGATE_DATA_DIR.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.client import Client
from service.db import Database
from service.jobstore import SqlJobStore
from service.serve import stop
from service.signing import key_path
from service.storage import BlobStore
from tests.fixtures_service import ServerHandle, embedded_settings, start_server
from tests.test_report_cli import certified_run
from verifiers.certificate import load_public_keys, parse_certificate, verify_certificate
from verifiers.examples import to_npz
from verifiers.schema import scorecard_schema

REPORTS = {"html": "text/html", "md": "text/markdown", "xml": "application/xml",
           "svg": "image/svg+xml"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server(embedded_settings(tmp_path_factory.mktemp("reports")), workers=0)
    yield handle
    stop([handle.proc])


def _finish(server: ServerHandle, job_id: str, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Be the worker: claim the job and store a real scorecard through the job store."""
    monkeypatch.setenv("ROBUSTGATE_DATA_DIR", str(server.settings.data_dir))
    db = Database(server.settings.database_url)
    try:
        store = SqlJobStore(db, BlobStore(server.settings.storage_dir))
        spec = store.claim(job_id)
        assert spec is not None and spec.model_bytes == certified_run().model.read_bytes()
        card = copy.deepcopy(certified_run().card)
        store.succeed(job_id, card)
        # What the store keeps and signs names the standard's owner (a built-in here).
        card["standard"] = {**card["standard"], "owner": "builtin"}
    finally:
        db.dispose()
    return card


def _get(server: ServerHandle, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=60)


def test_schema_keys_reports_and_certificate_over_http(server, monkeypatch, tmp_path):
    # The key exists from the first start, private to the service's user.
    assert key_path(server.settings.data_dir).stat().st_mode & 0o777 == 0o600
    schema = _get(server, "/v1/schema/scorecard", None)
    assert schema.status_code == 200 and schema.json() == scorecard_schema()
    keys = _get(server, "/v1/keys", None).json()["keys"]
    assert len(keys) == 1 and keys[0]["algorithm"] == "Ed25519"
    import base64

    raw = base64.b64decode(keys[0]["public_key"])
    assert keys[0]["key_id"] == hashlib.sha256(raw).hexdigest()

    alice, bob = server.token("alice"), server.token("bob")
    run = certified_run()
    with Client(server.url, alice) as client:
        job = client.submit(run.model, run.eval_set, "demo-digits")
    base = f"/v1/certifications/{job['id']}"
    paths = [f"{base}/report.{ext}" for ext in REPORTS] + [f"{base}/certificate",
                                                          f"{base}/adversarial.npz"]
    for path in paths:  # queued (no worker): nothing to render yet; others see nothing
        assert _get(server, path, alice).status_code == 409, path
        assert _get(server, path, bob).status_code == 404, path
        assert _get(server, path, None).status_code == 401, path

    card = _finish(server, job["id"], monkeypatch)
    for ext, media in REPORTS.items():
        response = _get(server, f"{base}/report.{ext}", alice)
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert _get(server, f"{base}/report.{ext}", bob).status_code == 404
    html = _get(server, f"{base}/report.html", alice).text
    assert 'data-plot="robust-accuracy"' in html and keys[0]["key_id"] in html
    assert len(ET.fromstring(_get(server, f"{base}/report.xml", alice).content)
               .find("testsuite").findall("testcase")) == len(card["criteria"])
    assert ET.fromstring(_get(server, f"{base}/report.svg", alice).content) \
        .get("data-verdict") == card["verdict"]
    md = _get(server, f"{base}/report.md", alice).text
    assert f"**{card['verdict']}**" in md and md.startswith("<!-- robustgate:report -->")
    assert f"[Full report]({server.url}/ui/certifications/{job['id']})" in md
    npz = _get(server, f"{base}/adversarial.npz", alice)
    assert npz.status_code == 200 and npz.content == to_npz(card)
    with np.load(io.BytesIO(npz.content)) as arrays:
        assert len(arrays["index"]) > 0 and np.all(arrays["adv_pred"] != arrays["label"])
    assert _get(server, f"{base}/adversarial.npz", bob).json()["error"]["code"] == "not_found"

    cert = _get(server, f"{base}/certificate", alice).json()
    assert cert["scorecard"] == card and cert["certification_id"] == job["id"]
    assert verify_certificate(cert, load_public_keys(json.dumps({"keys": keys})))
    _verify_cli_cases(server, cert, keys, tmp_path)


def _verify_cli_cases(server: ServerHandle, cert: dict, keys: list, tmp_path: Path) -> None:
    model = str(certified_run().model)
    good = tmp_path / "certificate.json"
    good.write_text(json.dumps(cert, indent=2))
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"keys": keys}))

    ok = server.cli("verify-certificate", str(good), "--model", model, "--server", server.url,
                    check=False)
    assert ok.returncode == 0 and "VALID" in ok.stdout, ok.stdout + ok.stderr
    offline = server.cli("verify-certificate", str(good), "--model", model, "--public-key",
                         str(keys_file), "--standard", cert["scorecard"]["standard"]["name"],
                         check=False)
    assert offline.returncode == 0, offline.stdout + offline.stderr

    forged = copy.deepcopy(cert)
    forged["scorecard"]["metrics"]["clean.accuracy"] = 1.0 - 1e-9
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    tampered = server.cli("verify-certificate", str(bad), "--model", model, "--public-key",
                          str(keys_file), check=False)
    assert tampered.returncode == 1 and "INVALID (signature)" in tampered.stdout

    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(Path(model).read_bytes() + b"\0")
    wrong = server.cli("verify-certificate", str(good), "--model", str(other_model),
                       "--public-key", str(keys_file), check=False)
    assert wrong.returncode == 1 and "INVALID (model)" in wrong.stdout

    standard = server.cli("verify-certificate", str(good), "--model", model, "--public-key",
                          str(keys_file), "--standard", "some-other-standard", check=False)
    assert standard.returncode == 1 and "INVALID (standard)" in standard.stdout

    usage = server.cli("verify-certificate", str(good), "--model", model, check=False)
    assert usage.returncode == 2 and "--public-key" in usage.stderr


def test_submit_report_writes_the_servers_reports_and_certificate(server, monkeypatch,
                                                                 tmp_path):
    token = server.token("ci-pipeline")
    run = certified_run()
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "submit", str(run.model), "--data",
         str(run.eval_set), "--standard", "demo-digits", "--server", server.url, "--token",
         token, "--report", str(out)], env=server.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        job_id = _wait_for_job(server, token)
        card = _finish(server, job_id, monkeypatch)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 2}[card["verdict"]], stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "adversarial.npz", "certificate.json", "report.html", "report.md", "report.svg",
        "report.xml", "scorecard.json"]
    assert json.loads((out / "scorecard.json").read_text()) == card
    cert = parse_certificate((out / "certificate.json").read_bytes())
    keys = load_public_keys(_get(server, "/v1/keys", None).text)
    assert verify_certificate(cert, keys).certification_id == job_id
    assert (out / "report.html").read_text() == \
        _get(server, f"/v1/certifications/{job_id}/report.html", token).text
    assert f"VERDICT: {card['verdict']}" in stdout


def test_a_scorecard_that_cannot_be_signed_errors_the_job(server, monkeypatch):
    """NaN is not JSON: no certificate could cover it, so the job ends errored, with why."""
    token = server.token("nan-tenant")
    run = certified_run()
    with Client(server.url, token) as client:
        job = client.submit(run.model, run.eval_set, "demo-digits")
        monkeypatch.setenv("ROBUSTGATE_DATA_DIR", str(server.settings.data_dir))
        db = Database(server.settings.database_url)
        try:
            store = SqlJobStore(db, BlobStore(server.settings.storage_dir))
            assert store.claim(job["id"]) is not None
            card = copy.deepcopy(run.card)
            card["checks"]["clean"]["metrics"]["accuracy"] = float("nan")
            store.succeed(job["id"], card)
        finally:
            db.dispose()
        done = client.get(job["id"])
    assert done["status"] == "errored" and done["verdict"] is None
    assert "could not sign the scorecard" in done["error"]
    assert "checks.clean.metrics.accuracy" in done["error"]
    path = f"/v1/certifications/{job['id']}/report.html"
    assert _get(server, path, token).status_code == 409


def _wait_for_job(server: ServerHandle, token: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = _get(server, "/v1/certifications", token).json()["items"]
        if items:
            return items[0]["id"]
        time.sleep(0.3)
    raise AssertionError("the CLI never submitted its job")


@pytest.mark.postgres
@pytest.mark.redis
def test_certificate_verifies_after_a_round_trip_through_postgres(postgres_url, monkeypatch,
                                                                   tmp_path_factory):
    """PostgreSQL's JSON column must give back the very scorecard that was signed."""
    import uuid

    import redis

    from tests.fixtures_service import REDIS_URL

    queue = f"rg-report-{uuid.uuid4().hex[:8]}"  # not the production fixture's worker queue
    broker = f"{REDIS_URL}/5"
    settings = embedded_settings(tmp_path_factory.mktemp("reports-pg"),
                                 ROBUSTGATE_DATABASE_URL=postgres_url,
                                 ROBUSTGATE_BROKER_URL=broker, ROBUSTGATE_QUEUE=queue)
    handle = start_server(settings, workers=0)
    try:
        token = handle.token("pg-tenant")
        run = certified_run()
        with Client(handle.url, token) as client:
            job = client.submit(run.model, run.eval_set, "demo-digits")
        _finish(handle, job["id"], monkeypatch)
        cert = _get(handle, f"/v1/certifications/{job['id']}/certificate", token).json()
        keys = load_public_keys(_get(handle, "/v1/keys", None).text)
        assert verify_certificate(cert, keys).certification_id == job["id"]
    finally:
        stop([handle.proc])
        client = redis.Redis.from_url(broker)
        client.delete(queue)
        client.close()
