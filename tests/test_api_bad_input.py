"""Bad input gets a 4xx JSON error naming the problem and leaves nothing behind.

"Nothing" is checked three ways: no blob in storage (nor a staged upload), no database row,
no message in the broker's queue folder.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api import create_app
from service.auth import create_token
from service.db import Certification, Dataset, StoredModel
from service.db.migrate import upgrade
from tests.bundles import HOSTILE, bundle
from tests.fixtures_service import embedded_settings


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = embedded_settings(tmp_path_factory.mktemp("api"),
                                 ROBUSTGATE_MAX_UPLOAD_BYTES=str(400_000))
    upgrade(settings.database_url)
    app = create_app(settings)
    assert app.state.services.celery.main == "robustgate"  # creates the broker folders
    with app.state.services.db.session() as s:
        token = create_token(s, "tenant")
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, app.state.services


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _state(services) -> tuple[int, int, int, int]:
    with services.db.session() as s:
        rows = sum(s.scalar(select(func.count()).select_from(t))
                   for t in (Certification, StoredModel, Dataset))
    queued = sum(1 for _ in Path(services.settings.broker_dir / "queue").iterdir())
    return rows, services.blobs.blob_count(), services.blobs.staged_count(), queued


def _post(client, model: bytes, data: bytes, standard: str = "demo-digits", **form):
    files = {"model": ("m.onnx", model), "data": ("d.npz", data)}
    return client.post("/v1/certifications", files=files, data={"standard": standard, **form})


@pytest.fixture(scope="module")
def good(digits):
    return digits.robust_model.read_bytes(), digits.eval_set.read_bytes(), digits


CASES = {
    "not_onnx": (lambda m, d, g: (b"this is not a model", d), 422, "invalid_model",
                 "not a valid ONNX"),
    "truncated_onnx": (lambda m, d, g: (m[: len(m) // 2], d), 422, "invalid_model", "model"),
    "empty_model": (lambda m, d, g: (b"", d), 422, "invalid_model", "empty"),
    "oversized_model": (lambda m, d, g: (m + b"\0" * 400_000, d), 413, "model_too_large",
                        "limit"),
    "npz_without_y": (lambda m, d, g: (m, _npz(x=g.x)), 422, "invalid_dataset", "'y'"),
    "not_npz": (lambda m, d, g: (m, b"garbage"), 422, "invalid_dataset", ".npz"),
    "shape_mismatch": (lambda m, d, g: (m, _npz(x=g.x.reshape(len(g.x), 1, 4, 16), y=g.y)),
                       422, "dataset_mismatch", "shape"),
    "label_out_of_range": (lambda m, d, g: (m, _npz(x=g.x, y=np.where(g.y == 3, 12, g.y))),
                           422, "dataset_mismatch", "label 12"),
    "int_inputs": (lambda m, d, g: (m, _npz(x=(g.x * 16).astype(np.int64), y=g.y)), 422,
                   "invalid_dataset", "float"),
    "pickled_object_array": (lambda m, d, g: (m, _npz(x=np.array([{}], dtype=object), y=g.y)),
                             422, "invalid_dataset", "readable"),
} | {  # model bundles (tests/bundles.py): each refused before any data file is read
    f"bundle_{name}": (lambda m, d, g, build=build: (build(m), d), 422, "invalid_model", words)
    for name, (build, words) in HOSTILE.items()
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_upload_is_refused_and_leaves_nothing(api, good, case):
    client, services = api
    make, status, code, words = CASES[case]
    model, data = make(*good)
    before = _state(services)
    response = _post(client, model, data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert words.lower() in error["message"].lower()
    assert _state(services) == before


def test_unknown_standard_and_bad_range_are_named(api, good):
    client, services = api
    before = _state(services)
    r = _post(client, good[0], good[1], standard="no-such-standard")
    assert r.status_code == 422 and "no-such-standard" in r.json()["error"]["message"]
    r = _post(client, good[0], good[1], input_low="0.2", input_high="0.5")
    assert r.status_code == 422 and "contradicts standard demo-digits v2" in r.text
    # A standard written before domains (v1) takes the submission's range, and checks it.
    r = _post(client, good[0], good[1], input_low="0.2", input_high="0.5",
              standard="demo-digits@1")
    assert r.status_code == 422 and "outside the input domain" in r.text
    r = _post(client, good[0], good[1], input_mean="0.5", input_std="x")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input_mapping"
    # Normalised data without the mapping: refused, naming the flags that fix it.
    with np.load(io.BytesIO(good[1])) as npz:
        z = io.BytesIO()
        np.savez(z, x=(npz["x"] - 0.5) / 0.25, y=npz["y"])
    r = _post(client, good[0], z.getvalue())
    assert r.status_code == 422 and "input_mean" in r.text and "span [-2, 2]" in r.text
    r = client.post("/v1/certifications", files={"model": ("m.onnx", good[0])},
                    data={"standard": "demo-digits"})
    assert r.status_code == 422 and "data" in r.json()["error"]["message"]
    assert _state(services) == before


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer rg_not-a-real-token", "Basic abc"])
def test_missing_or_bad_token_is_401_and_stores_nothing(api, good, header):
    client, services = api
    before = _state(services)
    headers = {"Authorization": header} if header else {}
    files = {"model": ("m.onnx", good[0]), "data": ("d.npz", good[1])}
    r = TestClient(client.app).post("/v1/certifications", files=files, headers=headers,
                                    data={"standard": "demo-digits"})
    assert r.status_code == 401 and r.json()["error"]["code"] in ("unauthenticated",
                                                                  "invalid_token")
    assert _state(services) == before


def test_valid_upload_is_stored_and_queued_then_cancel_and_delete(api, good):
    """The counterpart that makes the tests above able to fail: a good upload does store."""
    client, services = api
    rows, blobs, staged, queued = _state(services)
    r = _post(client, good[0], good[1])
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/certifications/{job['id']}"
    assert _state(services) == (rows + 3, blobs + 2, staged, queued + 1)
    # No worker in this test: the job stays queued until cancelled.
    r = client.delete(f"/v1/certifications/{job['id']}")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert client.get(f"/v1/certifications/{job['id']}").json()["status"] == "cancelled"
    r = client.get(f"/v1/certifications/{job['id']}/scorecard")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_ready"
    # A cancelled job removed: its rows and blobs go too.
    assert client.delete(f"/v1/certifications/{job['id']}").status_code == 204
    assert _state(services)[:3] == (rows, blobs, staged)


def test_a_model_bundle_is_accepted_and_stored_by_its_own_hash(api, good):
    """A zip of graph + external data is stored as uploaded, content-addressed by the zip's
    bytes; intake describes the model the inline upload is."""
    client, services = api
    rows, blobs, staged, queued = _state(services)
    packed = bundle(good[0])
    r = _post(client, packed, good[1])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["model"]["sha256"] == hashlib.sha256(packed).hexdigest()
    assert job["model"]["size"] == len(packed)
    assert _state(services) == (rows + 3, blobs + 2, staged, queued + 1)
    client.delete(f"/v1/certifications/{job['id']}")
    assert client.delete(f"/v1/certifications/{job['id']}").status_code == 204


def test_cancelled_job_is_not_run_by_a_worker(api, good):
    from service.jobstore import SqlJobStore
    from workers.tasks import run_job

    client, services = api
    job = _post(client, good[0], good[1]).json()
    client.delete(f"/v1/certifications/{job['id']}")
    run_job(SqlJobStore(services.db, services.blobs), job["id"])
    after = client.get(f"/v1/certifications/{job['id']}").json()
    assert after["status"] == "cancelled" and after["verdict"] is None


def test_unknown_route_and_job_are_json_404(api):
    client, _ = api
    r = client.get("/v1/certifications/does-not-exist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/nothing-here").json()["error"]["code"] == "not_found"
