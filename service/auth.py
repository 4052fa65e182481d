"""Bearer API tokens scoped to a tenant. Only the sha256 of a token is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import ApiToken, Tenant

TOKEN_PREFIX = "rg_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, tenant_name: str) -> str:
    """Create the tenant if needed and a new token for it; the token is shown once."""
    tenant_name = tenant_name.strip()
    if not tenant_name or len(tenant_name) > 128:
        raise ValueError("tenant name must be 1-128 characters")
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(tenant_id=tenant.id, token_hash=hash_token(token), prefix=token[:10]))
    return token


def tenant_for_token(session: Session, token: str) -> Tenant | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                                                ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    return session.get(Tenant, row.tenant_id)
