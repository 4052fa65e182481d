"""Bearer API tokens scoped to a tenant. Only the sha256 of a token is stored.

A token has a name, its creation and last-use times and an optional expiry. An admin token
(``is_admin``) may also create, list and revoke tokens over ``/v1/tokens``; one is created at
``robustgate serve`` start-up when none exists (written to ``$DATA_DIR/admin-token``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import ApiToken, Tenant

TOKEN_PREFIX = "rg_"
ADMIN_TENANT = "admin"
ADMIN_TOKEN_FILE = "admin-token"
# last_used_at is refreshed at most this often: a read is not a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(when: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


@dataclass(frozen=True)
class Caller:
    tenant_id: int
    token_id: int
    is_admin: bool


def create_token(session: Session, tenant_name: str, *, name: str = "",
                 expires_at: datetime | None = None, admin: bool = False) -> str:
    """Create the tenant if needed and a new token for it; the token is shown once."""
    return issue_token(session, tenant_name, name=name, expires_at=expires_at,
                       admin=admin)[0]


def issue_token(session: Session, tenant_name: str, *, name: str = "",
                expires_at: datetime | None = None, admin: bool = False) -> tuple[str, ApiToken]:
    tenant_name = tenant_name.strip()
    if not tenant_name or len(tenant_name) > 128:
        raise ValueError("tenant name must be 1-128 characters")
    if len(name) > 128:
        raise ValueError("token name must be at most 128 characters")
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(tenant_id=tenant.id, token_hash=hash_token(token), prefix=token[:10],
                   name=name, expires_at=expires_at, is_admin=admin)
    session.add(row)
    session.flush()
    return token, row


def authenticate(session: Session, token: str, now: datetime | None = None) -> Caller | None:
    """The caller a token stands for, or None (unknown, revoked or expired)."""
    found = _authenticate_row(session, token, now)
    return None if found is None else found[0]


def _authenticate_row(session: Session, token: str,
                      now: datetime | None = None) -> tuple[Caller, datetime | None] | None:
    """(caller, the token's expiry) for a valid token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                                                ApiToken.revoked_at.is_(None)))
    if row is None:
        return None
    now = now or datetime.now(UTC)
    expires = _aware(row.expires_at)
    if expires is not None and expires <= now:
        return None
    last = _aware(row.last_used_at)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Caller(row.tenant_id, row.id, row.is_admin), expires


# How long a verified token is trusted without asking the database again. A token revoked
# through this API process stops at once (the revoke route forgets it); one revoked elsewhere
# (through another API replica, or in the database) stops within this many seconds.
TOKEN_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class _Verified:
    caller: Caller
    trusted_until: float  # on the cache's clock (time.monotonic)
    expires_at: datetime | None


class TokenCache:
    """Verified tokens for a few seconds, keyed by their sha256: a status poll then costs no
    token query. Only valid tokens are kept (an unknown token is asked again every time)."""

    def __init__(self, ttl: float = TOKEN_CACHE_SECONDS, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    def lookup(self, token: str) -> Caller | None:
        entry = self._entries.get(hash_token(token))
        if entry is None or self._clock() >= entry.trusted_until:
            return None
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            return None
        return entry.caller

    def verify(self, session: Session, token: str) -> Caller | None:
        """The caller from the cache, else from the database (and then cached)."""
        caller = self.lookup(token)
        if caller is not None:
            return caller
        found = _authenticate_row(session, token)
        if found is None:
            return None
        caller, expires = found
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # bounded memory; refilled on demand
            self._entries[hash_token(token)] = _Verified(caller, self._clock() + self.ttl,
                                                         expires)
        return caller

    def forget(self, token_id: int) -> None:
        """Drop a token at once (it was revoked here)."""
        with self._lock:
            for key in [k for k, v in self._entries.items() if v.caller.token_id == token_id]:
                del self._entries[key]


def tenant_for_token(session: Session, token: str) -> Tenant | None:
    caller = authenticate(session, token)
    return None if caller is None else session.get(Tenant, caller.tenant_id)


def token_record(session: Session, row: ApiToken) -> dict:
    """A token as GET /v1/tokens lists it (never the secret)."""
    tenant = session.get(Tenant, row.tenant_id)

    def iso(when: datetime | None) -> str | None:
        when = _aware(when)
        return None if when is None else when.isoformat().replace("+00:00", "Z")

    return {"id": row.id, "tenant": tenant.name if tenant else None, "name": row.name,
            "prefix": row.prefix, "admin": row.is_admin, "created_at": iso(row.created_at),
            "last_used_at": iso(row.last_used_at), "expires_at": iso(row.expires_at),
            "revoked_at": iso(row.revoked_at)}


def ensure_admin_token(session: Session, data_dir: Path) -> Path | None:
    """At start-up: if no usable admin token exists, create one and write it (mode 0600) to
    ``data_dir/admin-token``. Returns the file when a token was created."""
    now = datetime.now(UTC)
    rows = session.scalars(select(ApiToken).where(ApiToken.is_admin.is_(True),
                                                  ApiToken.revoked_at.is_(None))).all()
    if any(_aware(r.expires_at) is None or _aware(r.expires_at) > now for r in rows):
        return None
    token = create_token(session, ADMIN_TENANT, name="created at serve start-up", admin=True)
    path = data_dir / ADMIN_TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return path
