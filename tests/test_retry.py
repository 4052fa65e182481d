"""Issue #20, item 4: broker and database calls on a job's path retry through an outage
(workers.retry), on real servers: a private redis-server killed and started again, PostgreSQL
backends terminated idle and in the middle of a transaction. No mock stands in for either.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from service.db import Database
from service.db.migrate import upgrade
from service.jobstore import SqlJobStore
from service.storage import BlobStore
from tests.fixtures_service import PG_ADMIN
from tests.own_redis import OwnRedis, started_own_redis
from workers.app import ATTACK_SHARD_TASK, PRIORITY_SEP, make_celery, priority_for
from workers.retry import NO_RETRY, RetryPolicy, is_transient
from workers.tasks import celery_dispatch

# --- the broker ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    yield from started_own_redis(tmp_path_factory.mktemp("retry-redis"))


def _start_later(server: OwnRedis, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), server.start()), daemon=True)
    thread.start()
    return thread


@pytest.mark.redis
def test_shards_sent_while_redis_is_down_arrive_once_it_is_back(own_redis):
    queue = f"rq-{uuid.uuid4().hex[:8]}"
    app = make_celery(own_redis.url, queue, retry=RetryPolicy(total_seconds=60))
    dispatch = celery_dispatch(app)  # what a worker sends a job's shards with
    messages = [(ATTACK_SHARD_TASK, ("job", f"attack-{k}"), f"job:attack-{k}") for k in range(5)]
    own_redis.kill()
    back = _start_later(own_redis, 3.0)  # down for 3 s, longer than Celery's own retry
    dispatch(messages, [priority_for(k) for k in range(5)])
    back.join()
    client = redis.Redis.from_url(own_redis.url)
    try:
        gpu = f"{queue}-gpu"
        lengths = {level: client.llen(f"{gpu}{PRIORITY_SEP}{level}" if level else gpu)
                   for level in range(10)}
    finally:
        client.close()
    # Every shard arrived once, at its level (shard k has k shards of its tenant ahead).
    assert lengths == {0: 1, 1: 1, 2: 2, 3: 1} | {n: 0 for n in range(4, 10)}


@pytest.mark.redis
def test_an_outage_longer_than_the_bound_raises_the_brokers_error(own_redis):
    app = make_celery(own_redis.url, f"rq-{uuid.uuid4().hex[:8]}")
    attempts = []

    def send() -> None:
        attempts.append(time.monotonic())
        app.send_task(ATTACK_SHARD_TASK, args=["job", "attack-0"], task_id="job:attack-0")

    own_redis.kill()
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as raised:
            RetryPolicy(total_seconds=2.0).call(send)
        elapsed = time.monotonic() - started
    finally:
        own_redis.start()
    assert is_transient(raised.value), repr(raised.value)
    assert len(attempts) > 1, "a broker error must be retried"
    # Bounded: no wait starts past 2 s; one more attempt (kombu's quick reconnects) after it.
    assert elapsed < 2.0 + 10.0, elapsed


def test_an_error_of_the_job_is_raised_at_once():
    calls = []

    def refused() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        RetryPolicy(total_seconds=30).call(refused)
    assert calls == [1]
    assert not is_transient(ValueError("a bad input"))


# --- the database -------------------------------------------------------------------------


@pytest.fixture
def pg_db(tmp_path: Path):
    name = f"rg_retry_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            # One job row to write to (foreign keys off for this session: ids only matter).
            conn.execute("SET session_replication_role = replica")
            conn.execute("INSERT INTO tenants (id, name, created_at) VALUES (1, 't', now())")
            conn.execute(
                "INSERT INTO certifications (id, tenant_id, model_id, dataset_id, standard_id, "
                "status, stage, progress, seed, cancel_requested, attempts, worker, "
                "shards_total, created_at, updated_at) VALUES ('j', 1, 1, 1, 1, 'running', "
                "'', 0, 0, false, 1, '', 2, now(), now())")
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _terminate(url: str, pid: int | None = None) -> None:
    """pg_terminate_backend on one backend, or on every backend of the database but ours;
    waits (up to 5 s) until each is gone."""
    with psycopg.connect(url, autocommit=True) as conn:
        where = "pid = %s" if pid is not None else (
            "datname = current_database() AND pid <> pg_backend_pid()")
        conn.execute(f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                     f"WHERE {where}", (pid,) if pid is not None else ())


def _drop_connection_at(db: Database, url: str, marker: str) -> list[int]:
    """The first statement containing ``marker`` finds its connection terminated: the
    backend is killed after the transaction began, just before the statement is sent."""
    killed: list[int] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def kill(conn, _cursor, statement, *_args) -> None:
        if not killed and marker in statement:
            pid = conn.connection.dbapi_connection.info.backend_pid
            killed.append(pid)
            _terminate(url, pid)

    return killed


@pytest.mark.postgres
def test_a_job_path_write_survives_a_connection_dropped_mid_transaction(pg_db, tmp_path):
    db = Database(pg_db)
    store = SqlJobStore(db, BlobStore(tmp_path / "blobs"), retry=RetryPolicy(total_seconds=30))
    try:
        store.heartbeat("j")  # a pooled connection now exists
        killed = _drop_connection_at(db, pg_db, "UPDATE certifications")
        store.advance_progress("j", 0.5, "attacks 1/2 shards")
        assert killed, "the connection was never dropped"
        killed_part = _drop_connection_at(db, pg_db, "INSERT INTO certification_parts")
        store.finish_part("j", "attack-0", b"evidence")
        assert killed_part
        assert store.part("j", "attack-0") == b"evidence"
        with db.session() as s:
            assert s.execute(text("SELECT progress FROM certifications")).scalar() == 0.5
    finally:
        db.dispose()


@pytest.mark.postgres
def test_without_the_retry_the_same_drop_is_a_transient_error(pg_db, tmp_path):
    db = Database(pg_db)
    store = SqlJobStore(db, BlobStore(tmp_path / "blobs"), retry=NO_RETRY)
    try:
        store.heartbeat("j")
        _drop_connection_at(db, pg_db, "UPDATE certifications")
        with pytest.raises(OperationalError) as raised:
            store.advance_progress("j", 0.5, "attacks 1/2 shards")
        assert is_transient(raised.value), repr(raised.value)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_connections_dropped_while_idle_are_replaced(pg_db, tmp_path):
    """pool_pre_ping: every pooled connection terminated between two calls."""
    db = Database(pg_db)
    store = SqlJobStore(db, BlobStore(tmp_path / "blobs"), retry=NO_RETRY)
    try:
        store.heartbeat("j")
        _terminate(pg_db)
        store.report_progress("j", 0.25, "prepare")
        assert not store.is_cancelled("j")
    finally:
        db.dispose()
