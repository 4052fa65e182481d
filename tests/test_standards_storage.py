"""Migration 0004 on a database in use: built-in rows and the runs that used them survive;
afterwards two tenants may hold the same document, a built-in may not be stored twice, and a
downgrade that would lose tenants' standards is refused. SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from service.db.engine import normalise_url
from service.db.migrate import downgrade, upgrade
from tests.fixtures_service import PG_ADMIN

SHA = "a" * 64
NOW = "CURRENT_TIMESTAMP"
STANDARD = ("INSERT INTO standards (name, version, sha256, document, builtin, created_at"
            "{extra_cols}) VALUES (:name, :version, :sha, 'doc', :builtin, " + NOW +
            "{extra_vals})")


def _exec(url: str, sql: str, **params) -> list:
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def _standard(url: str, name: str, version: int, tenant: int | None) -> None:
    cols, vals = (", tenant_id", ", :tenant") if tenant is not None else ("", "")
    _exec(url, STANDARD.format(extra_cols=cols, extra_vals=vals), name=name, version=version,
          sha=SHA, builtin=tenant is None, tenant=tenant)


def _scenario(url: str) -> None:
    upgrade(url, "0005")  # the revision before this one
    _exec(url, f"INSERT INTO tenants (id, name, created_at) VALUES (1, 'a', {NOW})")
    _exec(url, f"INSERT INTO tenants (id, name, created_at) VALUES (2, 'b', {NOW})")
    _exec(url, STANDARD.format(extra_cols=", id", extra_vals=", 7"), name="demo", version=1,
          sha=SHA, builtin=True)
    for table, extra_col, extra_val in (("models", "info", "'{}'"), ("datasets", "n_samples",
                                                                     "3")):
        _exec(url, f"INSERT INTO {table} (id, tenant_id, sha256, size, storage_key, filename, "
                   f"{extra_col}, created_at) VALUES (1, 1, :sha, 1, 'k', 'f', {extra_val}, "
                   f"{NOW})", sha=SHA)
    _exec(url, "INSERT INTO certifications (id, tenant_id, model_id, dataset_id, standard_id, "
               "status, stage, progress, seed, cancel_requested, created_at, updated_at) "
               f"VALUES ('job', 1, 1, 1, 7, 'queued', 'q', 0, 0, false, {NOW}, {NOW})")
    upgrade(url)
    assert _exec(url, "SELECT id, name, tenant_id FROM standards") == [(7, "demo", None)]
    assert _exec(url, "SELECT standard_id FROM certifications") == [(7,)]
    _standard(url, "demo", 1, tenant=1)          # the same document, owned by tenants
    _standard(url, "demo", 1, tenant=2)
    for tenant in (None, 1):                     # a built-in twice; a tenant's version twice
        with pytest.raises(IntegrityError):
            _standard(url, "demo", 1 if tenant else 2, tenant=tenant)
    with pytest.raises(RuntimeError, match="would lose them"):
        downgrade(url, "0005")
    _exec(url, "DELETE FROM standards WHERE tenant_id IS NOT NULL")
    downgrade(url, "0005")
    assert _exec(url, "SELECT id, sha256 FROM standards") == [(7, SHA)]


def test_migration_0004_on_sqlite(tmp_path):
    _scenario(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"rg_std_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_migration_0004_on_postgres(pg_url):
    _scenario(pg_url)
