"""Issue #20, second round: every failure is a JSON error, uploads cannot fill the disk,
identical concurrent submissions make one job, deployments migrate once.
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import create_token
from service.db.migrate import upgrade
from service.serve import stop
from tests.fixtures_service import embedded_settings, start_server
from verifiers import StandardError, parse_standard
from verifiers.data import load_eval_set
from verifiers.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL = (EXAMPLES / "digits_cnn.onnx").read_bytes()
DATA = (EXAMPLES / "digits_eval.npz").read_bytes()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = embedded_settings(tmp_path_factory.mktemp("api20"),
                                 ROBUSTGATE_MAX_DECOMPRESSED_BYTES=str(20_000_000))
    upgrade(settings.database_url)
    app = create_app(settings)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with app.state.services.db.session() as s:
        token = create_token(s, "tenant")
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, app.state.services


def _post(client, data: bytes, standard: str = "demo-digits"):
    files = {"model": ("m.onnx", MODEL), "data": ("d.npz", data)}
    return client.post("/v1/certifications", files=files, data={"standard": standard})


def _forged_npz(shape: tuple[int, ...]) -> bytes:
    """An npz whose ``x`` header claims ``shape`` but holds a few bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 64)
        y = io.BytesIO()
        np.save(y, np.zeros(4, np.int64))
        archive.writestr("y.npy", y.getvalue())
    return buf.getvalue()


# --- 5. no plain-text 500s ---------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2**40, 2**20), (2**62, 4), (2**31, 2**31, 2**31)])
def test_a_forged_npy_shape_is_a_422_json_error(api, shape):
    client, services = api
    r = _post(client, _forged_npz(shape))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_dataset"
    assert services.blobs.staged_count() == 0


def test_an_npz_bomb_is_refused_from_its_zip_headers_naming_the_cap(api):
    client, _ = api
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((40, 250_000), np.float32), y=np.zeros(40, np.int64))
    assert len(buf.getvalue()) < 200_000  # 40 MB inflated, the cap is 20 MB
    r = _post(client, buf.getvalue())
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "over the cap of 20000000 bytes" in message
    assert "ROBUSTGATE_MAX_DECOMPRESSED_BYTES" in message
    with pytest.raises(DataError, match="over the cap of 1000 bytes"):
        load_eval_set(buf.getvalue(), max_decompressed=1000)


def test_a_version_beyond_the_database_column_is_refused_at_parse(api):
    doc = ("name: big\nversion: 2147483648\ninput_domain: {low: 0.0, high: 1.0}\n"
           "threat_model: {norm: linf, eps: ['0.1']}\n"
           "criteria:\n  - {metric: clean.accuracy, op: '>=', threshold: 0.5}\n")
    with pytest.raises(StandardError, match="<= 2147483647"):
        parse_standard(doc)
    client, _ = api
    r = client.post("/v1/standards", content=doc)
    assert r.status_code == 422, r.text
    assert "<= 2147483647" in r.json()["error"]["message"]
    r = _post(client, DATA, standard="demo-digits@" + "9" * 25)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unknown_standard"


def test_any_unhandled_exception_is_a_json_500(api):
    client, _ = api
    r = client.get("/v1/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"


# --- 6. a chunked upload stops at the limit ------------------------------------------------

def test_a_chunked_upload_stops_at_the_limit_and_leaves_nothing(tmp_path):
    limit = 1_000_000
    server = start_server(embedded_settings(tmp_path / "srv",
                                            ROBUSTGATE_MAX_UPLOAD_BYTES=str(limit)))
    try:
        token = server.token("chunky")
        sent = 0
        boundary = "rgboundary"

        def body():
            nonlocal sent
            yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"standard\"\r\n\r\n"
                   f"demo-digits\r\n--{boundary}\r\nContent-Disposition: form-data; "
                   f"name=\"model\"; filename=\"m.onnx\"\r\n\r\n").encode()
            chunk = b"\0" * 65536
            for _ in range(200_000_000 // len(chunk)):  # 200 MB, no Content-Length
                sent += len(chunk)
                yield chunk

        r = httpx.post(f"{server.url}/v1/certifications", content=body(), timeout=120,
                       headers={"Authorization": f"Bearer {token}",
                                "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "request_too_large"
        assert sent < 50_000_000, f"the server read {sent} bytes past a {limit}-byte limit"
        storage = server.settings.storage_dir
        leftovers = [p for p in storage.rglob("*") if p.is_file()]
        assert leftovers == []
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    finally:
        stop([server.proc])


# --- 7. identical concurrent submissions make one job ---------------------------------------

def test_dedupe_on_sqlite_takes_the_write_lock_and_still_answers(api):
    client, _ = api
    first, second = _post(client, DATA), _post(client, DATA)
    assert (first.status_code, second.status_code) == (202, 200), (first.text, second.text)
    assert first.json()["id"] == second.json()["id"]


def _race(server, token: str, seed: int) -> list[httpx.Response]:
    barrier = threading.Barrier(10)
    answers: list[httpx.Response] = []

    def submit() -> None:
        barrier.wait()
        answers.append(httpx.post(
            f"{server.url}/v1/certifications", timeout=300,
            headers={"Authorization": f"Bearer {token}"},
            files={"model": ("m.onnx", MODEL), "data": ("d.npz", DATA)},
            data={"standard": "demo-digits", "seed": str(seed)}))

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_ten_identical_concurrent_submissions_make_one_job(production_server):
    """A few rounds (a new seed each): the race window is narrow, one round may miss it."""
    token = production_server.token("dedupe-race")
    for round_ in range(6):
        answers = _race(production_server, token, 100 + round_)
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 9 + [202], (round_, [r.text[:200] for r in answers])
        assert len({r.json()["id"] for r in answers}) == 1
    with httpx.Client(base_url=production_server.url,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get("/v1/certifications", params={"limit": 50}).json()
    assert page["total"] == 6, page


# --- 9. deployments ------------------------------------------------------------------------

def test_two_concurrent_migrate_processes_on_a_fresh_database_both_succeed():
    import subprocess
    import sys
    import uuid

    import psycopg

    from tests.fixtures_service import PG_ADMIN, clean_env

    name = f"rg_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        env = clean_env() | {"ROBUSTGATE_DATABASE_URL": url}
        procs = [subprocess.Popen([sys.executable, "-m", "service.cli", "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        from alembic.script import ScriptDirectory

        from service.db.migrate import alembic_config
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert versions == [(head,)]
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_livez_answers_while_the_database_is_down(tmp_path):
    from service.demo import free_port

    settings = embedded_settings(
        tmp_path, ROBUSTGATE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    client = TestClient(create_app(settings))  # no lifespan: nothing else touches the database
    assert client.get("/healthz").status_code == 503
    live = client.get("/livez")
    assert live.status_code == 200 and live.json()["status"] == "ok"
