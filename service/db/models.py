"""Tables. Every row a user can reach carries its tenant; queries filter on it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    # sha256 of the token: a database leak does not leak usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # 0008: what the token is for, when it was last used (to the minute), when it expires,
    # and whether it may manage tokens (POST/GET/DELETE /v1/tokens).
    name: Mapped[str] = mapped_column(String(128), default="")
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class _Upload:
    """Columns shared by uploaded artifacts: owned by a tenant, stored by content hash."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(256))
    filename: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoredModel(_Upload, Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256", name="uq_models_tenant_sha256"),)

    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Dataset(_Upload, Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256", name="uq_datasets_tenant_sha256"),)

    n_samples: Mapped[int] = mapped_column(Integer)


class StandardRecord(Base):
    """A standard as used by a run: immutable, identified by the hash of its document.

    ``tenant_id`` owns an uploaded standard; NULL marks a built-in. One document per
    (tenant, name, version): changing a standard means a new version. A unique constraint
    treats NULLs as distinct, so built-ins get a partial unique index on their hash instead.
    """

    __tablename__ = "standards"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", "version",
                         name="uq_standards_tenant_name_version"),
        Index("uq_standards_builtin_sha256", "sha256", unique=True,
              sqlite_where=text("tenant_id IS NULL"),
              postgresql_where=text("tenant_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE", name="fk_standards_tenant"), nullable=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Certification(Base):
    __tablename__ = "certifications"
    __table_args__ = (Index("ix_certifications_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    # Optional user-uploaded out-of-distribution inputs (npz with ``x`` only).
    ood_dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("datasets.id", name="fk_certifications_ood_dataset"), nullable=True)
    standard_id: Mapped[int] = mapped_column(ForeignKey("standards.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(String(64), default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    input_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    # How the model's input units map to the standard's: {"mean": [...], "std": [...]}.
    input_mapping: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Liveness: a running job's worker beats; the watchdog re-queues a job whose beat stopped.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    worker: Mapped[str] = mapped_column(String(128), default="")
    # Sharding (workers.tasks): how many attack shards the plan made (0: not planned yet).
    shards_total: Mapped[int] = mapped_column(Integer, default=0)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    scorecard: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The signature envelope (verifiers.certificate.envelope); the scorecard is the payload.
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)


class CertificationPart(Base):
    """One step of a sharded job, keyed by (job, part): "prepare", "attack-<k>", "finish".

    ``state`` is running (a worker beats ``heartbeat_at``) or done (``payload`` holds the
    result). A redelivered shard finds its part done and writes nothing: the first result
    stays.
    """

    __tablename__ = "certification_parts"

    job_id: Mapped[str] = mapped_column(ForeignKey("certifications.id", ondelete="CASCADE"),
                                        primary_key=True)
    part: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="running")
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    worker: Mapped[str] = mapped_column(String(128), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                          nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CertificationShare(Base):
    """A public, revocable link to one certification's badge (``/badge/<token>.svg``).

    Only the sha256 of the token is stored, like API tokens: the link is shown once.
    """

    __tablename__ = "certification_shares"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certification_id: Mapped[str] = mapped_column(
        ForeignKey("certifications.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
