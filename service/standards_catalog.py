"""Which standards a tenant may name, tenants' own uploads, and the immutable records.

Built-ins live in standards/ and are readable by anyone. A tenant may upload its own
(``POST /v1/standards``); only that tenant sees and uses them. Rules:

- Names of built-ins are reserved: an upload under one is refused (409), so a built-in's name
  means the same document for every tenant.
- Lookup is the caller's own standard first, then the built-ins: a built-in added later under a
  name a tenant already uses does not change what that tenant's pipelines certify against.
- ``name`` means the latest version, ``name@version`` pins one.
- Immutable: one document per (owner, name, version). The same document again is accepted
  (idempotent); a different one under the same name and version is refused (409): changing a
  standard means a new version. A built-in whose document changed without a new version is
  refused at first use (its old document is on record under that version).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import Database, StandardRecord
from service.errors import ApiError
from verifiers import Standard, StandardError, builtin_standards, parse_standard
from verifiers.limits import DEFAULT_CEILINGS, Ceilings, over_ceilings
from verifiers.standards import builtin_versions
from verifiers.standards.lint import lint
from verifiers.standards.parse import MAX_VERSION

MAX_DOCUMENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class Resolved:
    standard: Standard
    tenant_id: int | None  # the owner; None for a built-in


def resolve(name: str, db: Database | None = None, tenant_id: int | None = None) -> Resolved:
    """``name`` or ``name@version``: the caller's own standard, else a built-in."""
    base, _, pinned = name.partition("@")
    version = int(pinned) if pinned.isascii() and pinned.isdigit() else None
    if pinned and (version is None or version > MAX_VERSION):
        raise ApiError(422, "unknown_standard", f"{name!r}: the version after '@' must be an "
                                                f"integer <= {MAX_VERSION}")
    if db is not None and tenant_id is not None:
        with db.session() as s:
            row = _own(s, tenant_id, base, version)
            if row is not None:
                return Resolved(_stored(row.document), tenant_id)
    catalogue = _builtins()
    std = catalogue.get(base)
    if std is not None and version in (None, std.version):
        return Resolved(std, None)
    if std is not None and version is not None:
        older = builtin_versions(base).get(version)
        if older is not None:
            return Resolved(older, None)
    known = sorted(catalogue) + (_own_names(db, tenant_id) if db and tenant_id else [])
    raise ApiError(422, "unknown_standard",
                   f"unknown standard {name!r}; known: {', '.join(sorted(set(known)))}")


def record_for(session: Session, resolved: Resolved) -> StandardRecord:
    """The row of exactly this document: the tenant's upload, or the built-in's (created on
    first use)."""
    std = resolved.standard
    if resolved.tenant_id is not None:
        row = session.scalar(select(StandardRecord).where(
            StandardRecord.tenant_id == resolved.tenant_id, StandardRecord.sha256 == std.sha256))
        if row is None:
            raise ApiError(422, "unknown_standard", f"standard {std.name!r} is not on record")
        return row
    builtin = select(StandardRecord).where(StandardRecord.tenant_id.is_(None))
    row = session.scalar(builtin.where(StandardRecord.sha256 == std.sha256))
    if row is not None:
        return row
    used = session.scalar(builtin.where(StandardRecord.name == std.name,
                                        StandardRecord.version == std.version))
    if used is not None:
        raise ApiError(500, "broken_standard", (
            f"built-in standard {std.name} v{std.version} differs from the document already "
            f"used under that version (sha256 {used.sha256[:12]}); a changed built-in needs a "
            "new version"))
    try:
        with session.begin_nested():
            row = StandardRecord(name=std.name, version=std.version, sha256=std.sha256,
                                 document=std.document, builtin=True, tenant_id=None)
            session.add(row)
    except IntegrityError:  # a concurrent submission created it first
        row = session.scalar(builtin.where(StandardRecord.sha256 == std.sha256))
    return row


def within_ceilings(standard: Standard, ceilings: Ceilings) -> None:
    """422 naming every budget of ``standard`` above this server's ceilings."""
    over = over_ceilings(standard, ceilings)
    if over:
        raise ApiError(422, "budget_over_ceiling", (
            f"standard {standard.name} v{standard.version} asks for more work than this server "
            f"allows (ROBUSTGATE_MAX_*): {'; '.join(over)}"))


def upload(db: Database, tenant_id: int, document: str,
           ceilings: Ceilings = DEFAULT_CEILINGS) -> tuple[dict, bool]:
    """Store a tenant's standard: (its description, whether it was new)."""
    try:
        std = parse_standard(document)
    except StandardError as exc:
        raise ApiError(422, "invalid_standard", f"standard refused: {exc}") from exc
    within_ceilings(std, ceilings)
    errors = [f.message for f in lint(std) if f.severity == "error"]
    if errors:
        raise ApiError(422, "invalid_standard", f"standard refused: {'; '.join(errors)}")
    if std.name in _builtins():
        raise ApiError(409, "standard_name_reserved", (
            f"{std.name!r} is the name of a built-in standard; choose another name"))
    with db.session() as s:
        row = _own(s, tenant_id, std.name, std.version)
        if row is None:
            if _insert(s, tenant_id, std):
                return describe(std, builtin=False), True
            row = _own(s, tenant_id, std.name, std.version)  # a concurrent upload won
        if row is None or row.sha256 != std.sha256:
            raise ApiError(409, "standard_exists", (
                f"standard {std.name} v{std.version} already exists with different content; "
                "changing a standard means a new version"))
    return describe(std, builtin=False), False


def _insert(s: Session, tenant_id: int, std: Standard) -> bool:
    try:
        with s.begin_nested():
            s.add(StandardRecord(name=std.name, version=std.version, sha256=std.sha256,
                                 document=std.document, builtin=False, tenant_id=tenant_id))
    except IntegrityError:
        return False
    return True


def describe(standard: Standard, builtin: bool = True) -> dict:
    return {
        "name": standard.name, "version": standard.version, "sha256": standard.sha256,
        "description": standard.description, "norm": standard.norm,
        "eps": [e.label for e in standard.eps],
        "criteria": [{"metric": c.metric, "op": c.op, "threshold": c.threshold,
                      "severity": c.severity} for c in standard.criteria],
        "builtin": builtin,
    }


def list_visible(db: Database, tenant_id: int | None) -> list[dict]:
    """The built-ins, then the caller's own standards (every version)."""
    out = [describe(s) for s in _builtins().values()]
    if tenant_id is None:
        return out
    with db.session() as s:
        rows = s.scalars(select(StandardRecord).where(StandardRecord.tenant_id == tenant_id)
                         .order_by(StandardRecord.name, StandardRecord.version)).all()
        documents = [r.document for r in rows]
    return out + [describe(_stored(d), builtin=False) for d in documents]


def _own(s: Session, tenant_id: int, name: str, version: int | None) -> StandardRecord | None:
    query = select(StandardRecord).where(StandardRecord.tenant_id == tenant_id,
                                         StandardRecord.name == name)
    if version is not None:
        query = query.where(StandardRecord.version == version)
    return s.scalar(query.order_by(StandardRecord.version.desc()).limit(1))


def _own_names(db: Database, tenant_id: int) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(StandardRecord.name)
                              .where(StandardRecord.tenant_id == tenant_id).distinct()))


def _builtins() -> dict[str, Standard]:
    try:
        return builtin_standards()
    except StandardError as exc:  # a broken built-in is a deployment bug: say which
        raise ApiError(500, "broken_standard", str(exc)) from exc


def _stored(document: str) -> Standard:
    try:
        return parse_standard(document)
    except StandardError as exc:  # validated at upload; a stricter release must migrate it
        raise ApiError(500, "broken_standard", f"stored standard no longer parses: {exc}") \
            from exc
