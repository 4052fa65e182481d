"""Engine and session factory; SQLite gets WAL and foreign keys so it behaves like a server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

# Connections kept per process, and opened beyond that under bursts (then closed).
POOL_SIZE = 20
POOL_OVERFLOW = 20


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
        if self.url.startswith("sqlite:///"):
            ensure_sqlite_folder(self.url)
            self.engine: Engine = create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            # Keep as many connections as the API's thread pool runs requests at once (anyio:
            # 40): with SQLAlchemy's default 5 (+10 overflow), polls beyond the fifth each
            # opened a connection, a new server backend, and closed it again.
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=POOL_SIZE,
                                        max_overflow=POOL_OVERFLOW)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A pooled connection outside any transaction, for one-statement reads (status
        polls): no BEGIN and COMMIT round trips around the SELECT."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
