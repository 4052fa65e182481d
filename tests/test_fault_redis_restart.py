"""Restart Redis mid-job: the job completes or errors with a reason, never hangs.

Production shape (PostgreSQL, a real server and a real Celery worker) on a Redis server this
module starts itself on a free loopback port, so the shared Redis on :6379 is never touched.
Mid-job the Redis process is killed with SIGKILL and started again on the same port without
persistence (``--save ""``): the restarted broker is empty, every queued and unacknowledged
message is gone. That is the worst case a broker restart can do, and still no job may be left
``queued`` or ``running`` for ever, the API must keep answering, and the worker must reconnect
by itself and take new work.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from service.client import FINISHED, Client, ClientError
from service.serve import stop
from tests.fixtures_service import PG_ADMIN, child_processes, embedded_settings, start_server
from tests.own_redis import started_own_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE")
TERMINAL_WITHIN_S = 300.0
RETRY_S = 15.0


def _children(pid: int) -> list[int]:
    """The server's Celery worker processes."""
    return child_processes(pid, b"celery")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    yield from started_own_redis(tmp_path_factory.mktemp("own-redis"))


@pytest.fixture(scope="module")
def service_on_own_redis(tmp_path_factory, own_redis):
    """(server handle, worker pids): one worker, a fast heartbeat, a private database."""
    name = f"rg_rr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    workers: list[int] = []
    try:
        settings = embedded_settings(
            tmp_path_factory.mktemp("rr"),
            ROBUSTGATE_DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{name}",
            ROBUSTGATE_BROKER_URL=own_redis.url, ROBUSTGATE_QUEUE=f"rg-rr-{uuid.uuid4().hex[:8]}",
            ROBUSTGATE_HEARTBEAT_SECONDS="0.5", ROBUSTGATE_STALE_SECONDS="3",
            # Broker calls retry through an outage this long (workers.retry), then give up.
            ROBUSTGATE_RETRY_SECONDS=str(RETRY_S))
        handle = start_server(settings, workers=1)
        try:
            workers = _children(handle.proc.pid)
            assert workers, "the server started no worker process"
            yield handle, workers
        finally:
            stop([handle.proc])
            # The server stops its workers; make sure none outlives a server that was killed.
            for pid in workers:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_terminal(client: Client, job_id: str, workers: list[int], log: Path,
                   timeout: float = TERMINAL_WITHIN_S) -> dict:
    """Poll until the job is finished; every poll also proves the API still answers."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(job_id)
        if job["status"] in FINISHED:
            return job
        _assert_workers_alive(workers, log)
        assert time.monotonic() < deadline, (
            f"certification {job_id} hangs: still {job['status']} ({job['stage']}) after "
            f"{timeout:.0f} s\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.5)


def _assert_workers_alive(workers: list[int], log: Path) -> None:
    dead = [pid for pid in workers if not _alive(pid)]
    assert not dead, (f"worker process(es) {dead} died (nothing restarts them):\n"
                      f"{log.read_text(errors='replace')[-4000:]}")


def _assert_ended_with_reason(job: dict, client: Client) -> None:
    assert job["status"] in ("succeeded", "errored"), job
    if job["status"] == "errored":
        assert job["error"], f"errored without a reason: {job}"
    else:
        assert job["verdict"] in VERDICTS, job
        assert client.scorecard(job["id"])["verdict"] in VERDICTS


def test_redis_restart_mid_job_never_hangs(service_on_own_redis, own_redis, digits):
    handle, workers = service_on_own_redis
    log = handle.log_path
    # A generous client timeout: an API call that hangs shows up as a failure, not a stall.
    with Client(handle.url, handle.token("redis-restart"), timeout=60) as client:
        running = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=31)
        deadline = time.monotonic() + 120
        while True:
            state = client.get(running["id"])
            if state["status"] == "running" and state["progress"] >= 0.05:
                break
            assert state["status"] in ("queued", "running"), state
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        # A second job waits behind it (one worker): its messages live only in Redis.
        waiting = client.submit(digits.brittle_model, digits.eval_set, "demo-digits", seed=32)
        assert client.get(waiting["id"])["status"] in ("queued", "running")

        own_redis.kill()
        down_at = time.monotonic()
        # Redis is down: the API still answers, promptly.
        health = httpx.get(f"{handle.url}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "degraded" and not health.json()["broker_reachable"]
        for job in (running, waiting):
            assert client.get(job["id"])["status"] in ("queued", "running", *FINISHED)
        # A submission while the broker stays down past the retry bound is refused with a
        # reason, not swallowed.
        started = time.monotonic()
        with pytest.raises(ClientError) as refused:
            client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=33)
        assert refused.value.status == 503 and "queue" in str(refused.value), refused.value
        assert time.monotonic() - started < RETRY_S + 15, "refusing a submission took too long"
        # Stay down for several heartbeats and longer than the stale limit.
        time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))
        assert httpx.get(f"{handle.url}/healthz", timeout=10).status_code == 200

        own_redis.start()  # same port, empty: both messages above are lost
        health = httpx.get(f"{handle.url}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["broker_reachable"], health.text

        first = _wait_terminal(client, running["id"], workers, log)
        _assert_ended_with_reason(first, client)
        second = _wait_terminal(client, waiting["id"], workers, log)
        _assert_ended_with_reason(second, client)

        # The worker reconnected by itself: a job submitted after the restart runs to the end.
        after = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=34)
        done = _wait_terminal(client, after["id"], workers, log)
        assert done["status"] == "succeeded", done
        assert done["verdict"] in VERDICTS
    # The same processes reconnected: none died, none was replaced.
    _assert_workers_alive(workers, log)
    assert sorted(_children(handle.proc.pid)) == sorted(workers)


def test_an_idle_worker_reconnects_after_a_redis_restart(service_on_own_redis, own_redis,
                                                         digits):
    """The worker waits on the broker (no job) when Redis dies: it must come back by itself."""
    handle, workers = service_on_own_redis
    log = handle.log_path
    with Client(handle.url, handle.token("redis-idle"), timeout=60) as client:
        own_redis.kill()
        # Down for longer than the worker's first reconnection back-off steps.
        time.sleep(8)
        assert httpx.get(f"{handle.url}/healthz", timeout=10).status_code == 200
        _assert_workers_alive(workers, log)
        own_redis.start()
        # The API's pooled broker connections are stale now: publishing must reconnect.
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=41)
        done = _wait_terminal(client, job["id"], workers, log)
        assert done["status"] == "succeeded", done
        assert done["verdict"] in VERDICTS
        assert client.scorecard(job["id"])["verdict"] in VERDICTS
    _assert_workers_alive(workers, log)
    assert sorted(_children(handle.proc.pid)) == sorted(workers)


def test_jobs_submitted_while_redis_is_down_for_seconds_all_succeed(service_on_own_redis,
                                                                     own_redis, digits):
    """An outage shorter than the retry bound, exactly while plans are being sent: the
    submissions wait it out, every job succeeds. (A worker sending shards goes through the
    same policy: tests/test_retry.py sends shards through an outage.)"""
    handle, workers = service_on_own_redis
    log = handle.log_path
    token = handle.token("redis-blip")
    submitted: dict[int, dict] = {}
    failed: dict[int, BaseException] = {}

    def submit(model: Path, seed: int) -> None:
        try:
            with Client(handle.url, token, timeout=120) as client:
                submitted[seed] = client.submit(model, digits.eval_set, "demo-digits",
                                                seed=seed)
        except BaseException as exc:  # reported below
            failed[seed] = exc

    own_redis.kill()
    threads = [threading.Thread(target=submit, args=(model, seed)) for model, seed in
               ((digits.robust_model, 51), (digits.brittle_model, 52))]
    for thread in threads:
        thread.start()
    time.sleep(4.0)  # down for seconds, well inside RETRY_S
    own_redis.start()
    for thread in threads:
        thread.join(timeout=RETRY_S + 60)
    assert not failed, failed
    assert sorted(submitted) == [51, 52]
    with Client(handle.url, token, timeout=60) as client:
        for job in submitted.values():
            done = _wait_terminal(client, job["id"], workers, log)
            assert done["status"] == "succeeded", done
            assert done["verdict"] in VERDICTS
    _assert_workers_alive(workers, log)
