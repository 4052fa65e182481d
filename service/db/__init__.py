"""Persistence: SQLAlchemy 2 models, engine and sessions (SQLite or PostgreSQL)."""

from service.db.engine import Database
from service.db.models import (
    ApiToken,
    Base,
    Certification,
    CertificationPart,
    CertificationShare,
    Dataset,
    StandardRecord,
    StoredModel,
    Tenant,
)

__all__ = [
    "ApiToken",
    "Base",
    "Certification",
    "CertificationPart",
    "CertificationShare",
    "Database",
    "Dataset",
    "StandardRecord",
    "StoredModel",
    "Tenant",
]
