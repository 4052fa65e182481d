"""Tenants' own standards over HTTP: upload, idempotence, immutability, isolation, use.

The app runs in process (TestClient) on SQLite with the filesystem broker; one job is run by
the worker code in process to show the stored document is what the battery evaluates.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api import create_app
from service.auth import create_token
from service.db import Certification, StandardRecord
from service.db.migrate import upgrade
from service.jobstore import SqlJobStore
from service.signing import load_or_create_signer
from tests.fixtures_service import embedded_settings
from verifiers import builtin_standards
from workers.tasks import run_job

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DOC = """\
name: acme-gate
version: 1
description: clean accuracy and a small attack, for acme's CI
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model: {norm: linf, eps: ["0.1"]}
budget: {preset: quick}
attacks: [apgd-ce]
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.9}
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.5, severity: advisory}
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standards-api")
    settings = embedded_settings(folder)
    upgrade(settings.database_url)
    app = create_app(settings)
    with app.state.services.db.session() as s:
        tokens = {name: create_token(s, name) for name in ("alice", "bob")}
    with TestClient(app) as client:
        yield client, app.state.services, tokens


def _auth(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def _rows(services) -> int:
    with services.db.session() as s:
        return s.scalar(select(func.count()).select_from(StandardRecord))


def _submit(client, headers, standard: str):
    files = {"model": ("m.onnx", (EXAMPLES / "digits_cnn.onnx").read_bytes()),
             "data": ("d.npz", (EXAMPLES / "digits_eval.npz").read_bytes())}
    return client.post("/v1/certifications", files=files, data={"standard": standard},
                       headers=headers)


def test_upload_needs_a_token_and_refuses_bad_documents_naming_the_line(api):
    client, services, tokens = api
    before = _rows(services)
    r = client.post("/v1/standards", content=DOC)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = client.post("/v1/standards", content=DOC, headers={"Authorization": "Bearer rg_nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    alice = _auth(tokens, "alice")
    r = client.post("/v1/standards", content=DOC.replace("clean.accuracy", "clearn.accuracy"),
                    headers=alice)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_standard"
    message = r.json()["error"]["message"]
    assert "line 9: field criteria[0].metric: metric 'clearn.accuracy' names check" in message
    r = client.post("/v1/standards", content=b"name: \xff\xfe", headers=alice)
    assert r.status_code == 422 and "UTF-8" in r.json()["error"]["message"]
    r = client.post("/v1/standards", content=DOC + "#" * 300_000, headers=alice)
    assert r.status_code == 413 and r.json()["error"]["code"] == "standard_too_large"
    # Built-in names are reserved: a name means one document for every tenant.
    demo = builtin_standards()["demo-digits"].document
    r = client.post("/v1/standards", content=demo.replace("version: 1", "version: 2"),
                    headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "standard_name_reserved"
    assert _rows(services) == before


def test_upload_is_idempotent_and_a_change_needs_a_new_version(api):
    client, services, tokens = api
    alice = _auth(tokens, "alice")
    r = client.post("/v1/standards", content=DOC, headers={**alice, "Content-Type":
                                                           "application/yaml"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(DOC.encode()).hexdigest()
    assert body["builtin"] is False and body["name"] == "acme-gate" and body["version"] == 1
    assert r.headers["location"] == "/v1/standards/acme-gate?version=1"
    rows = _rows(services)
    again = client.post("/v1/standards", content=DOC, headers=alice)
    assert again.status_code == 200 and again.json() == body and _rows(services) == rows
    changed = DOC.replace("threshold: 0.9", "threshold: 0.8")
    r = client.post("/v1/standards", content=changed, headers=alice)
    assert r.status_code == 409 and r.json()["error"]["code"] == "standard_exists"
    assert "changing a standard means a new version" in r.json()["error"]["message"]
    assert _rows(services) == rows
    v2 = changed.replace("version: 1", "version: 2")
    assert client.post("/v1/standards", content=v2, headers=alice).status_code == 201
    latest = client.get("/v1/standards/acme-gate", headers=alice).json()
    assert latest["version"] == 2 and latest["document"] == v2
    first = client.get("/v1/standards/acme-gate?version=1", headers=alice).json()
    assert first["document"] == DOC and first["sha256"] == body["sha256"]


def test_another_tenant_can_neither_see_nor_use_it(api):
    client, services, tokens = api
    alice, bob = _auth(tokens, "alice"), _auth(tokens, "bob")
    assert client.post("/v1/standards", content=DOC, headers=alice).status_code in (200, 201)
    builtins = set(builtin_standards())
    listed = client.get("/v1/standards", headers=alice).json()
    own = [s for s in listed if not s["builtin"]]
    assert {s["name"] for s in listed if s["builtin"]} == builtins
    assert {s["name"] for s in own} == {"acme-gate"} and 1 in {s["version"] for s in own}
    for headers in (bob, {}):
        names = {s["name"] for s in client.get("/v1/standards", headers=headers).json()}
        assert names == builtins
        r = client.get("/v1/standards/acme-gate", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/standards", headers={"Authorization": "Bearer x"}).status_code == 401
    # Bob cannot certify against it: refused before anything is stored.
    with services.db.session() as s:
        jobs = s.scalar(select(func.count()).select_from(Certification))
    r = _submit(client, bob, "acme-gate")
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_standard"
    assert "acme-gate" not in r.json()["error"]["message"].split("known:")[1]
    with services.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Certification)) == jobs
    # Bob may hold a standard of the same name and content: his own row, his own lookup.
    r = client.post("/v1/standards", content=DOC, headers=bob)
    assert r.status_code == 201 and r.json()["sha256"] == hashlib.sha256(DOC.encode()).hexdigest()
    with services.db.session() as s:
        owners = s.scalars(select(StandardRecord.tenant_id)
                           .where(StandardRecord.name == "acme-gate",
                                  StandardRecord.version == 1)).all()
    assert len(set(owners)) == 2 and None not in owners


class _Polled(SqlJobStore):
    """The real store; after every progress write it calls ``poll`` (a status read)."""

    def __init__(self, *args, poll, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.poll = poll

    def advance_progress(self, job_id: str, fraction: float, stage: str) -> None:
        super().advance_progress(job_id, fraction, stage)
        self.poll()


def test_a_certification_uses_the_callers_own_standard(api, tmp_path):
    client, services, tokens = api
    alice = _auth(tokens, "alice")
    client.post("/v1/standards", content=DOC, headers=alice)
    v2 = DOC.replace("threshold: 0.9", "threshold: 0.8").replace("version: 1", "version: 2")
    client.post("/v1/standards", content=v2, headers=alice)
    pinned = _submit(client, alice, "acme-gate@1")
    assert pinned.status_code == 202, pinned.text
    assert pinned.json()["standard"] == {"name": "acme-gate", "version": 1,
                                         "sha256": hashlib.sha256(DOC.encode()).hexdigest()}
    assert _submit(client, alice, "acme-gate@7").status_code == 422
    job = _submit(client, alice, "acme-gate").json()
    v2_sha = hashlib.sha256(v2.encode()).hexdigest()
    assert job["standard"]["version"] == 2 and job["standard"]["sha256"] == v2_sha
    assert job["estimate"] is None  # queued: nothing measured
    # The worker evaluates exactly the stored document; the status is read each time the
    # worker reports progress, as a polling client would.
    seen: list[dict] = []
    store = _Polled(services.db, services.blobs, signer=load_or_create_signer(tmp_path),
                    poll=lambda: seen.append(
                        client.get(f"/v1/certifications/{job['id']}", headers=alice).json()))
    run_job(store, job["id"])
    done = client.get(f"/v1/certifications/{job['id']}", headers=alice).json()
    assert done["status"] == "succeeded", done
    assert done["estimate"] is None
    # 300 samples make two attack shards: once the first is done, the attacks' rate is known
    # and the time left is positive.
    attacking = [e["estimate"] for e in seen if e["stage"] == "attacks 1/2 shards"]
    assert attacking and all(e is not None for e in attacking), seen
    assert all(e["seconds_left"] > 0 and e["seconds_per_sample"] > 0 for e in attacking)
    assert {e["stage"] for e in attacking} == {"attacks"}
    card = client.get(f"/v1/certifications/{job['id']}/scorecard", headers=alice).json()
    assert card["standard"]["sha256"] == v2_sha
    assert [c["threshold"] for c in card["criteria"]] == [0.8, 0.5]
    assert card["verdict"] == "PASS" and done["verdict"] == "PASS"
    # Built-ins still resolve for everyone, and are recorded once, as built-ins.
    for who in ("alice", "bob"):
        assert _submit(client, _auth(tokens, who), "demo-digits").status_code == 202
    with services.db.session() as s:
        demo = s.scalars(select(StandardRecord).where(StandardRecord.name == "demo-digits")).all()
    assert len(demo) == 1 and demo[0].tenant_id is None and demo[0].builtin


def test_the_metric_catalogue_is_served_without_a_token(api):
    client = api[0]
    r = client.get("/v1/metrics")
    assert r.status_code == 200
    paths = {m["path"]: m for c in r.json()["checks"] for m in c["metrics"]}
    assert paths["ood.{suite}.auroc.{score}"]["placeholders"]["score"]["values"] == [
        "msp", "max_logit", "energy"]
    robust = paths["adversarial.robust_accuracy@{eps}"]
    assert robust["direction"] == "higher" and robust["bound"] == "upper"
    assert paths["certified.certified_accuracy@{eps}"]["bound"] == "lower"


def test_new_uploads_must_declare_their_input_domain(api):
    client, _, tokens = api
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    undeclared = DOC.replace("input_domain: {low: 0.0, high: 1.0, units: pixel intensity}\n",
                             "").replace("acme-gate", "acme-undeclared")
    r = client.post("/v1/standards", content=undeclared, headers=alice)
    assert r.status_code == 422 and "no input_domain" in r.json()["error"]["message"]


def test_a_job_past_its_standards_time_limit_still_ends_signed_and_inconclusive(api, tmp_path):
    client, services, tokens = api
    alice = _auth(tokens, "alice")
    doc = DOC.replace("acme-gate", "acme-hurry") + "time_limit_s: 0.001\n"
    assert client.post("/v1/standards", content=doc, headers=alice).status_code == 201
    job = _submit(client, alice, "acme-hurry").json()
    run_job(SqlJobStore(services.db, services.blobs, signer=load_or_create_signer(tmp_path)),
            job["id"])
    done = client.get(f"/v1/certifications/{job['id']}", headers=alice).json()
    assert done["status"] == "succeeded" and done["verdict"] == "INCONCLUSIVE", done
    card = client.get(f"/v1/certifications/{job['id']}/scorecard", headers=alice).json()
    assert card["time_limit"]["reached"]
    assert all("time limit of 0.001 s reached" in c["reason"] for c in card["criteria"])
    cert = client.get(f"/v1/certifications/{job['id']}/certificate", headers=alice)
    assert cert.status_code == 200, cert.text
