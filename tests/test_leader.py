"""One watchdog per deployment: the leader lock is held by one process at a time, on both
databases, and passes to another as soon as its holder stops or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from service.leader import WATCHDOG_LOCK, leader_lock
from tests.fixtures_service import PG_ADMIN

# Holds the lock, says so, then waits to be killed.
_HOLDER = """
import sys, time
from service.leader import leader_lock
lock = leader_lock(sys.argv[1], int(sys.argv[2]))
assert lock.held()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, postgres_url):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite'}"
    return postgres_url


def _key() -> int:
    """A lock key of this test's own: tests sharing the database never contend."""
    return WATCHDOG_LOCK ^ uuid.uuid4().int % 2**24


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_one_leader_at_a_time_and_the_next_takes_over(database_url):
    key = _key()
    first, second = leader_lock(database_url, key), leader_lock(database_url, key)
    try:
        assert first.held()
        assert first.held()  # keeping it is not taking it twice
        assert not second.held()
        first.release()
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_a_killed_leader_hands_over(database_url):
    key = _key()
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, database_url, str(key)],
                              stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"PYTHONPATH": os.getcwd()})
    follower = leader_lock(database_url, key)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not follower.held()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        # The kernel (flock) or the server (advisory lock) frees it with its holder.
        assert _wait_for(follower.held)
    finally:
        holder.kill()
        follower.release()


def test_a_leader_whose_database_session_ends_stops_leading(postgres_url):
    key = _key()
    lock, other = leader_lock(postgres_url, key), leader_lock(postgres_url, key)
    try:
        assert lock.held()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # as a server restart does
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks "
                          "WHERE locktype = 'advisory' AND objid = %s", (key,))
        assert _wait_for(other.held)  # the server released it with the session
        assert not lock.held()  # and the old leader notices instead of sweeping on
    finally:
        lock.release()
        other.release()
