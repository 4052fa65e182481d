"""One leader per deployment: the process that runs the watchdog when several API processes
(``serve --api-processes N``, or replicas on several hosts) share one database.

The lock dies with its holder, so a killed leader hands over on the next try of another:

* PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection of its own;
  the server releases it when that connection ends, on any host.
* SQLite (one host by construction): ``flock`` on a file beside the database; the kernel
  releases it when the process ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from service.db.engine import normalise_url

log = logging.getLogger(__name__)

# pg_advisory_lock key of the watchdog's leader ("RG" + "WD"); the migration lock is "RGMG".
WATCHDOG_LOCK = 0x5247_5744


class LeaderLock(Protocol):
    def held(self) -> bool:
        """Whether this process leads now: keeps the lock if it has it, else tries to take it
        (never waits)."""

    def release(self) -> None: ...


def leader_lock(database_url: str, key: int = WATCHDOG_LOCK) -> LeaderLock:
    url = normalise_url(database_url)
    if url.startswith("sqlite:///"):
        return FileLock(Path(url[len("sqlite:///"):] + f".lock-{key:x}"))
    return AdvisoryLock(url, key)


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def held(self) -> bool:
        if self._file is not None:
            return True
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        log.info("process %d leads (file lock %s)", os.getpid(), self.path)
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


class AdvisoryLock:
    def __init__(self, url: str, key: int) -> None:
        # Its own engine without a pool: the lock lives exactly as long as this connection.
        self._engine = create_engine(url, poolclass=NullPool)
        self.key = key
        self._conn: Connection | None = None

    def held(self) -> bool:
        if self._conn is not None:
            try:  # still the same server session? (a database restart ends it, and the lock)
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("leader's lock connection lost; trying to lead again")
                self._drop()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except Exception:
            return False  # the database is unreachable: nobody can sweep it anyway
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": self.key}).scalar())
        except Exception:
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("process %d leads (advisory lock %#x)", os.getpid(), self.key)
        return True

    def release(self) -> None:
        self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing to release
                self._conn.close()  # ends the session: the server releases the lock
            self._conn = None
