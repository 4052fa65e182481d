"""Workers die; jobs do not: kill -9 a worker mid-job and the job still completes, unchanged.

Production shape (PostgreSQL, Redis, two real worker processes) with a fast heartbeat so the
watchdog notices the loss in seconds.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, text

from service.client import Client
from service.db.engine import normalise_url
from service.serve import stop
from tests.fixtures_service import PG_ADMIN, embedded_settings, start_server

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, redis_queue):
    name = f"rg_ft_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    broker, _ = redis_queue
    settings = embedded_settings(
        tmp_path_factory.mktemp("ft"), ROBUSTGATE_DATABASE_URL=url,
        ROBUSTGATE_BROKER_URL=broker, ROBUSTGATE_QUEUE=f"rg-ft-{uuid.uuid4().hex[:8]}",
        ROBUSTGATE_HEARTBEAT_SECONDS="0.5", ROBUSTGATE_STALE_SECONDS="3")
    handle = start_server(settings, workers=2)
    yield handle, url
    stop([handle.proc])
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _comparable(card: dict) -> dict:
    card = {k: v for k, v in card.items() if k not in ("timings", "hardware")}
    card["checks"] = {k: {**v, "seconds": 0} for k, v in card["checks"].items()}
    return card


def test_kill_9_a_worker_mid_job_and_the_scorecard_is_unchanged(two_workers, digits):
    handle, url = two_workers
    engine = create_engine(normalise_url(url))
    # Two tenants: within one tenant the identical submission would reuse the first result.
    with Client(handle.url, handle.token("ft-reference")) as ref_client:
        reference = ref_client.submit(digits.robust_model, digits.eval_set, "demo-digits",
                                      seed=11)
        ref_client.wait(reference["id"], timeout=300)
        reference_card = ref_client.scorecard(reference["id"])
    with Client(handle.url, handle.token("ft")) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=11)
        deadline = time.monotonic() + 120
        while True:
            state = client.get(job["id"])
            if state["status"] == "running" and state["progress"] >= 0.05:
                break
            assert state["status"] in ("queued", "running"), state
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        with engine.connect() as conn:
            worker = conn.execute(text("SELECT worker FROM certifications WHERE id = :i"),
                                  {"i": job["id"]}).scalar_one()
        pid = int(worker.rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        done = client.wait(job["id"], timeout=300)
        with engine.connect() as conn:
            attempts = conn.execute(text("SELECT attempts FROM certifications WHERE id = :i"),
                                    {"i": job["id"]}).scalar_one()
        assert done["status"] == "succeeded", done
        assert attempts == 2
        assert _comparable(client.scorecard(job["id"])) == _comparable(reference_card)
    engine.dispose()


def _api_job(tmp_path, digits, **env: str):
    """An embedded API (no worker, no watchdog thread) holding one submitted job."""
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.auth import create_token
    from service.db.migrate import upgrade

    settings = embedded_settings(tmp_path, **env)
    upgrade(settings.database_url)
    app = create_app(settings)
    svc = app.state.services
    with svc.db.session() as s:
        token = create_token(s, "wd")
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    files = {"model": ("m.onnx", digits.robust_model.read_bytes()),
             "data": ("d.npz", digits.eval_set.read_bytes())}
    job_id = client.post("/v1/certifications", files=files,
                         data={"standard": "demo-digits"}).json()["id"]
    return svc, client, job_id


def test_watchdog_requeues_then_gives_up_with_a_reason(tmp_path, digits):
    """Embedded default: a job whose worker vanished is re-queued, and errors after the cap."""
    from datetime import timedelta

    from service.db import Certification
    from service.db.models import utcnow
    from service.watchdog import sweep

    svc, client, job_id = _api_job(tmp_path, digits, ROBUSTGATE_STALE_SECONDS="5",
                                   ROBUSTGATE_MAX_ATTEMPTS="2")

    def lose_worker(attempts: int) -> None:
        with svc.db.session() as s:
            job = s.get(Certification, job_id)
            job.status, job.attempts, job.worker = "running", attempts, "gone:1"
            job.heartbeat_at = utcnow() - timedelta(seconds=60)

    lose_worker(1)
    assert sweep(svc) == [job_id]
    state = client.get(f"/v1/certifications/{job_id}").json()
    assert state["status"] == "queued" and "gone:1 stopped beating" in state["stage"]
    lose_worker(2)
    assert sweep(svc) == []
    state = client.get(f"/v1/certifications/{job_id}").json()
    assert state["status"] == "errored" and "gave up after 2 attempts" in state["error"]
    # A fresh heartbeat is left alone.
    with svc.db.session() as s:
        job = s.get(Certification, job_id)
        job.status, job.heartbeat_at = "running", utcnow()
    assert sweep(svc) == []


def _stale_sharded_job(tmp_path, digits, **env: str):
    """A job whose plan ran (2 shards) and whose every beat is old: nothing works on it."""
    from datetime import timedelta

    from service.db import Certification
    from service.db.models import utcnow

    svc, _, job_id = _api_job(tmp_path, digits, ROBUSTGATE_STALE_SECONDS="5", **env)
    _purge(svc)  # the plan message: no worker runs in this test
    with svc.db.session() as s:
        job = s.get(Certification, job_id)
        job.status, job.attempts, job.worker, job.shards_total = "running", 1, "gone:1", 2
        job.heartbeat_at = utcnow() - timedelta(seconds=60)
    return svc, job_id


@pytest.mark.parametrize("broker", ["embedded", "redis"])
def test_a_job_whose_shard_waits_in_the_broker_is_not_requeued(tmp_path, digits, broker,
                                                               redis_queue):
    from service.broker import queued_task_ids
    from service.db import Certification
    from service.watchdog import sweep
    from workers import ATTACK_SHARD_TASK

    env = {} if broker == "embedded" else {
        "ROBUSTGATE_BROKER_URL": redis_queue[0],
        "ROBUSTGATE_QUEUE": f"rg-wd-{uuid.uuid4().hex[:8]}"}
    svc, job_id = _stale_sharded_job(tmp_path, digits, **env)
    try:
        # Its shard waits behind other work (priority 7: a busy tenant): it is not lost.
        svc.celery.send_task(ATTACK_SHARD_TASK, args=[job_id, "attack-1"],
                             task_id=f"{job_id}:attack-1", priority=7)
        svc.celery.send_task(ATTACK_SHARD_TASK, args=["other", "attack-0"],
                             task_id="other:attack-0")
        assert {f"{job_id}:attack-1", "other:attack-0"} <= queued_task_ids(svc.celery,
                                                                           svc.settings)
        assert sweep(svc) == []
        # Only another job's message waits: this one's are gone (a broker restart): re-queue.
        _purge(svc)
        svc.celery.send_task(ATTACK_SHARD_TASK, args=["other", "attack-0"],
                             task_id="other:attack-0")
        assert sweep(svc) == [job_id]
        with svc.db.session() as s:
            assert s.get(Certification, job_id).status == "queued"
        assert job_id in queued_task_ids(svc.celery, svc.settings)  # its plan, sent again
    finally:
        _purge(svc)
        svc.close()


def _purge(svc) -> None:
    with svc.celery.connection_for_write() as conn:
        for queue in svc.celery.conf.robustgate_queues:
            conn.default_channel.queue_purge(queue)


def test_a_shard_past_its_time_limit_errors_the_job_with_the_reason(tmp_path, digits):
    from service.jobstore import SqlJobStore
    from service.signing import load_or_create_signer
    from workers.tasks import run_job

    svc, client, job_id = _api_job(tmp_path, digits)
    store = SqlJobStore(svc.db, svc.blobs, load_or_create_signer(tmp_path),
                        shard_timeout_seconds=0.0)
    run_job(store, job_id)
    state = client.get(f"/v1/certifications/{job_id}").json()
    assert state["status"] == "errored", state
    assert "attack shard 0 (samples 0-256) ran past the shard time limit" in state["error"]
    svc.close()


def test_a_job_past_its_time_limit_errors_with_the_reason(tmp_path, digits):
    from datetime import timedelta

    from service.db import Certification
    from service.db.models import utcnow
    from service.watchdog import sweep

    svc, job_id = _stale_sharded_job(tmp_path, digits, ROBUSTGATE_JOB_TIMEOUT_SECONDS="60")
    try:
        with svc.db.session() as s:
            job = s.get(Certification, job_id)
            job.heartbeat_at = utcnow()  # alive, but started too long ago
            job.started_at = utcnow() - timedelta(seconds=120)
        assert sweep(svc) == []
        with svc.db.session() as s:
            job = s.get(Certification, job_id)
            assert job.status == "errored" and "time limit of 60 s" in job.error
    finally:
        _purge(svc)
        svc.close()
