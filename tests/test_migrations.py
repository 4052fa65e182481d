"""Alembic migrations go up and down on SQLite and PostgreSQL and match the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.db import Base
from service.db.engine import normalise_url
from service.db.migrate import downgrade, upgrade

TABLES = {"tenants", "api_tokens", "models", "datasets", "standards", "certifications",
          "certification_parts", "certification_shares"}


def _tables(url: str) -> set[str]:
    engine = create_engine(normalise_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def _roundtrip(url: str) -> None:
    upgrade(url)
    assert _tables(url) == TABLES
    assert _drift(url) == [], "migrations and service/db/models.py disagree"
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == TABLES


def test_sqlite_upgrade_downgrade_and_no_drift(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_downgrade_and_no_drift():
    import uuid

    import psycopg

    from tests.fixtures_service import PG_ADMIN

    name = f"rg_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        _roundtrip(f"postgresql://postgres@127.0.0.1:5432/{name}")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
