"""Run Alembic programmatically, so no alembic.ini has to sit in the working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from service.db.engine import ensure_sqlite_folder, normalise_url


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    # '%' must be escaped for configparser (passwords may contain it).
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


# pg_advisory_lock key held while migrating ("RG" + "MG"): API replicas and `robustgate
# migrate` started together migrate one at a time; the later ones find the schema at head.
MIGRATION_LOCK = 0x5247_4D47


def upgrade(database_url: str, revision: str = "head") -> None:
    url = normalise_url(database_url)
    ensure_sqlite_folder(url)
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(database_url), revision)
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as lock:  # a session lock on its own connection
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            lock.commit()
            try:
                command.upgrade(alembic_config(database_url), revision)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                lock.commit()
    finally:
        engine.dispose()


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def database_exists(database_url: str) -> bool:
    """True if the database exists and has been migrated at least once. Creates nothing
    (SQLite's file is not touched if absent); a server that cannot be reached raises."""
    from sqlalchemy import create_engine, inspect

    url = normalise_url(database_url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.is_file():
            return False
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return inspect(conn).has_table("alembic_version")
    finally:
        engine.dispose()
