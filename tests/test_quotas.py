"""Issue #20, item 5: per-tenant quotas from configuration (samples per job, queued shards,
jobs per hour), refused with a JSON error naming the quota, its limit and its variable, on
both brokers, storing nothing. The API runs in process; no worker, so accepted jobs stay
queued (their shards count against the tenant).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import create_token
from service.db.migrate import upgrade
from tests.fixtures_service import PG_ADMIN, REDIS_URL, embedded_settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODEL = (EXAMPLES / "digits_cnn.onnx").read_bytes()
DIGITS = np.load(EXAMPLES / "digits_eval.npz")
QUOTAS = {"ROBUSTGATE_MAX_SAMPLES_PER_JOB": "200", "ROBUSTGATE_MAX_QUEUED_SHARDS": "3",
          "ROBUSTGATE_MAX_JOBS_PER_HOUR": "4"}


@pytest.fixture(scope="module", params=[
    "filesystem", pytest.param("redis", marks=[pytest.mark.postgres, pytest.mark.redis])])
def api(request, tmp_path_factory):
    overrides = dict(QUOTAS)
    database = None
    if request.param == "redis":
        database = f"rg_quota_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        queue = f"rg-quota-{uuid.uuid4().hex[:8]}"
        overrides |= {"ROBUSTGATE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}",
                      "ROBUSTGATE_BROKER_URL": f"{REDIS_URL}/5", "ROBUSTGATE_QUEUE": queue}
    settings = embedded_settings(tmp_path_factory.mktemp(f"quota-{request.param}"), **overrides)
    try:
        upgrade(settings.database_url)
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, app.state.services
    finally:
        if database is not None:
            r = redis.Redis.from_url(f"{REDIS_URL}/5")
            for key in r.keys(f"{settings.queue}*"):
                r.delete(key)
            r.close()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _token(services, tenant: str) -> dict[str, str]:
    with services.db.session() as s:
        return {"Authorization": f"Bearer {create_token(s, tenant)}"}


def _npz(n: int) -> bytes:
    """The first ``n`` digits: a distinct file (and hash) for every ``n``."""
    buf = io.BytesIO()
    np.savez(buf, x=DIGITS["x"][:n], y=DIGITS["y"][:n])
    return buf.getvalue()


def _post(client, headers, data: bytes):
    files = {"model": ("m.onnx", MODEL), "data": ("d.npz", data)}
    return client.post("/v1/certifications", files=files, data={"standard": "demo-digits"},
                       headers=headers)


def _stored(services, data: bytes) -> bool:
    return services.blobs.path_of(services.blobs.key_for(hashlib.sha256(data).hexdigest())
                                  ).exists()


def _refusal(r, status: int, quota: str, limit: int) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert (error["quota"], error["limit"]) == (quota, limit), error
    assert error["variable"] == f"ROBUSTGATE_{quota.upper()}"
    assert quota in error["message"] and str(limit) in error["message"]
    return error


def _jobs(client, headers) -> int:
    return client.get("/v1/certifications", headers=headers).json()["total"]


def test_samples_per_job_is_a_413_before_anything_is_stored(api):
    client, services = api
    headers = _token(services, f"samples-{uuid.uuid4().hex[:6]}")
    big = _npz(300)
    _refusal(_post(client, headers, big), 413, "max_samples_per_job", 200)
    assert not _stored(services, big) and services.blobs.staged_count() == 0
    assert _jobs(client, headers) == 0
    assert _post(client, headers, _npz(200)).status_code == 202  # at the limit: accepted


def test_queued_shards_are_a_429_until_the_tenants_work_drains(api):
    client, services = api
    headers = _token(services, f"shards-{uuid.uuid4().hex[:6]}")
    ids = []
    for n in (101, 102, 103):  # one shard each: 3 queued, the quota
        r = _post(client, headers, _npz(n))
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    fourth = _npz(104)
    r = _post(client, headers, fourth)
    _refusal(r, 429, "max_queued_shards", 3)
    assert int(r.headers["Retry-After"]) >= 1
    assert not _stored(services, fourth), "a refused upload left its blob"
    assert _jobs(client, headers) == 3
    # Another tenant is not held back by this one's queue.
    assert _post(client, _token(services, f"other-{uuid.uuid4().hex[:6]}"),
                 _npz(105)).status_code == 202
    # Cancelling a queued job takes its shard off the tenant's queue.
    assert client.delete(f"/v1/certifications/{ids[0]}", headers=headers).status_code < 300
    assert _post(client, headers, fourth).status_code == 202


def test_jobs_per_hour_is_a_429_with_retry_after(api):
    client, services = api
    headers = _token(services, f"hourly-{uuid.uuid4().hex[:6]}")
    for n in (111, 112, 113, 114):  # cancelled at once: only the hourly count grows
        r = _post(client, headers, _npz(n))
        assert r.status_code == 202, r.text
        client.delete(f"/v1/certifications/{r.json()['id']}", headers=headers)
    fifth = _npz(115)
    r = _post(client, headers, fifth)
    _refusal(r, 429, "max_jobs_per_hour", 4)
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
    assert not _stored(services, fifth)
    assert _jobs(client, headers) == 4


def test_a_tenants_work_is_its_shards_not_yet_done(api):
    """What fairness and the queued-shards quota count (service.jobstore.tenant_work)."""
    from service.db import Certification
    from service.jobstore import SqlJobStore, tenant_work

    client, services = api
    headers = _token(services, f"work-{uuid.uuid4().hex[:6]}")
    first, second = (_post(client, headers, _npz(n)).json()["id"] for n in (121, 122))
    with services.db.session() as s:
        tenant = s.get(Certification, first).tenant_id
        assert tenant_work(s, tenant) == 2            # one shard each, planned from n_samples
        assert tenant_work(s, tenant, second) == 1    # the other jobs' work only
    SqlJobStore(services.db, services.blobs).finish_part(first, "attack-0", b"")
    with services.db.session() as s:
        assert tenant_work(s, tenant) == 1
