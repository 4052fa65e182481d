"""/v1/standards: the built-ins (public) and each tenant's own (see service.standards_catalog).

The auth middleware lets /v1/standards through unauthenticated, since built-ins are public;
the caller's own standards need its bearer token, read here. Reads without a token see the
built-ins only; a token that is sent must be valid. Uploads need one, checked before the body
is read.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from service import standards_catalog
from service.api.schemas import ERRORS, StandardOut
from service.auth import tenant_for_token
from service.errors import ApiError

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["standards"])


class StandardListed(StandardOut):
    builtin: bool  # false: the caller's own upload


class StandardDocument(StandardListed):
    document: str  # the YAML exactly as stored; sha256 is its hash


def _caller(request: Request, required: bool) -> int | None:
    header = request.headers.get("authorization")
    if header is None and not required:
        return None
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated",
                       "missing bearer token: send 'Authorization: Bearer <token>'")
    with request.app.state.services.db.session() as s:
        tenant = tenant_for_token(s, token.strip())
        if tenant is None:
            raise ApiError(401, "invalid_token", "the bearer token is not valid")
        return tenant.id


async def _read_capped(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "standard_too_large", f"a standard is at most {limit} bytes")
    return bytes(body)


@router.post("/standards", status_code=201, response_model=StandardListed, openapi_extra={
    "requestBody": {"required": True, "description": "the standard's YAML document",
                    "content": {"application/yaml": {"schema": {"type": "string"}}}}},
    responses={200: {"description": "the same document was already stored (idempotent)"}})
async def upload_standard(request: Request) -> JSONResponse:
    """Store one of the caller's standards. 201 when new, 200 when this exact document is
    already stored, 409 when the name and version exist with other content (changing a
    standard means a new version) or the name is a built-in's, 422 with the line at fault."""
    tenant_id = await run_in_threadpool(_caller, request, True)
    raw = await _read_capped(request, standards_catalog.MAX_DOCUMENT_BYTES)
    try:
        document = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_standard", "the standard is not UTF-8 text") from exc
    services = request.app.state.services
    body, created = await run_in_threadpool(standards_catalog.upload, services.db, tenant_id,
                                            document, services.settings.ceilings)
    location = f"/v1/standards/{body['name']}?version={body['version']}"
    return JSONResponse(body, status_code=201 if created else 200,
                        headers={"Location": location})


@router.get("/standards", response_model=list[StandardListed])
def list_standards(request: Request) -> list[dict]:
    """The built-ins, and the caller's own standards (every version) when a token is sent."""
    services = request.app.state.services
    return standards_catalog.list_visible(services.db, _caller(request, required=False))


@router.get("/standards/{name}", response_model=StandardDocument)
def get_standard(request: Request, name: str,
                 version: int | None = Query(None, ge=1, description="default: the latest")
                 ) -> dict:
    """One standard with its document: the caller's own first, then the built-ins."""
    services = request.app.state.services
    tenant_id = _caller(request, required=False)
    wanted = f"{name}@{version}" if version is not None and "@" not in name else name
    try:
        found = standards_catalog.resolve(wanted, services.db, tenant_id)
    except ApiError as err:
        if err.status != 422:
            raise
        raise ApiError(404, "not_found", err.message) from err
    return standards_catalog.describe(found.standard, builtin=found.tenant_id is None) | {
        "document": found.standard.document}


@router.get("/metrics", tags=["standards"])
def metric_catalogue() -> dict:
    """The metric catalogue: every path a criterion can name, which way is better, whether the
    reported value bounds the truth from one side, and what it means (public)."""
    from service.commands.catalog import catalogue_json

    return catalogue_json()
