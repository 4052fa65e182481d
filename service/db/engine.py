"""Engine and session factory; SQLite gets WAL and foreign keys so it behaves like a server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

# Connections kept per process, and opened beyond that under bursts (then closed).
POOL_SIZE = 20
POOL_OVERFLOW = 20

T = TypeVar("T")


def normalise_url(url: str) -> str:
    # Accept plain postgresql:// URLs; we ship the psycopg 3 driver.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine: Engine = self._engine()
        self._reader: Engine | None = None
        self._reader_lock = threading.Lock()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _engine(self, **options: Any) -> Engine:
        # Keep as many connections as the API's thread pool runs requests at once (anyio:
        # 40): with SQLAlchemy's default 5 (+10 overflow), polls beyond the fifth each opened
        # a connection (on PostgreSQL a new server backend; on SQLite a file open and three
        # pragmas) and closed it again.
        pool = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        if self.url.startswith("sqlite:///"):
            ensure_sqlite_folder(self.url)
            engine = create_engine(self.url, connect_args={"timeout": 30,
                                                           "check_same_thread": False},
                                   poolclass=QueuePool, **pool, **options)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(self.url, **({"pool_pre_ping": True} | pool | options))

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def read(self, query: Callable[[Connection], T]) -> T:
        """``query`` on a pooled connection outside any transaction, for short reads (status
        polls): no BEGIN and COMMIT round trips around the SELECT.

        Its own pool, opened on first use, whose connections stay in autocommit (switching a
        shared connection in and out of it cost a statement per poll on SQLite, its isolation
        pragma) and are not pinged before each use (a round trip per poll on PostgreSQL):
        instead a read that finds its connection dead (the server restarted) is run once
        more, on a new one; SQLAlchemy has by then dropped every connection of the pool
        older than the failure."""
        with self._reader_lock:  # many request threads may ask first at once
            if self._reader is None:
                self._reader = self._engine(isolation_level="AUTOCOMMIT", pool_pre_ping=False)
        try:
            with self._reader.connect() as conn:
                return query(conn)
        except DBAPIError as err:
            if not err.connection_invalidated:
                raise
        with self._reader.connect() as conn:
            return query(conn)

    def dispose(self) -> None:
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
