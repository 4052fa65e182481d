"""Public badges by share link: a tenant makes an unguessable, revocable URL for one
certification's badge, so a README can embed it without a token.

``POST /v1/certifications/{id}/share`` -> 201 ``{"url": ".../badge/<token>.svg", ...}`` (the
token is shown once; only its sha256 is kept). ``GET /v1/certifications/{id}/shares`` lists
them (prefix, dates). ``DELETE /v1/certifications/{id}/share`` revokes every live link of the
certification (204). ``GET /badge/<token>.svg`` is public: the badge, or 404 once revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from service import certifications
from service.api.schemas import ERRORS
from service.db import Certification, CertificationShare
from service.db.models import utcnow
from service.errors import ApiError
from verifiers.report import render_badge

SHARE_PREFIX = "rgs_"
router = APIRouter(responses=ERRORS)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _finished(request: Request, job_id: str) -> None:
    """404 for another tenant's or an unknown id, 409 until the scorecard exists."""
    certifications.scorecard(request.app.state.services, request.state.tenant_id, job_id)


@router.post("/v1/certifications/{job_id}/share", status_code=201, tags=["badges"],
             summary="make a public, revocable badge link for this certification")
def create_share(request: Request, job_id: str) -> JSONResponse:
    _finished(request, job_id)
    token = SHARE_PREFIX + secrets.token_urlsafe(24)
    with request.app.state.services.db.session() as s:
        share = CertificationShare(certification_id=job_id, tenant_id=request.state.tenant_id,
                                   token_hash=_hash(token), prefix=token[:10])
        s.add(share)
        s.flush()
        body = _public(share)
    url = str(request.base_url).rstrip("/") + f"/badge/{token}.svg"
    body |= {"url": url, "markdown": f"[![robustgate]({url})]({url})"}
    return JSONResponse(body, status_code=201, headers={"Location": url})


@router.get("/v1/certifications/{job_id}/shares", tags=["badges"],
            summary="the badge links of this certification (tokens are not shown again)")
def list_shares(request: Request, job_id: str) -> dict[str, Any]:
    certifications.get(request.app.state.services, request.state.tenant_id, job_id)
    with request.app.state.services.db.session() as s:
        rows = s.scalars(select(CertificationShare).where(
            CertificationShare.certification_id == job_id,
            CertificationShare.tenant_id == request.state.tenant_id)
            .order_by(CertificationShare.id)).all()
        return {"items": [_public(r) for r in rows]}


@router.delete("/v1/certifications/{job_id}/share", status_code=204, tags=["badges"],
               summary="revoke every live badge link of this certification",
               response_class=Response)
def revoke_shares(request: Request, job_id: str) -> Response:
    certifications.get(request.app.state.services, request.state.tenant_id, job_id)
    with request.app.state.services.db.session() as s:
        for share in s.scalars(select(CertificationShare).where(
                CertificationShare.certification_id == job_id,
                CertificationShare.tenant_id == request.state.tenant_id,
                CertificationShare.revoked_at.is_(None))):
            share.revoked_at = utcnow()
    return Response(status_code=204)


@router.get("/badge/{token}.svg", tags=["badges"], response_class=Response,
            summary="public badge by share link (no token needed; 404 once revoked)",
            responses={200: {"content": {"image/svg+xml": {}}}})
def shared_badge(request: Request, token: str) -> Response:
    with request.app.state.services.db.session() as s:
        share = s.scalar(select(CertificationShare).where(
            CertificationShare.token_hash == _hash(token),
            CertificationShare.revoked_at.is_(None)))
        job = s.get(Certification, share.certification_id) if share is not None else None
        card = job.scorecard if job is not None and job.tenant_id == share.tenant_id else None
    if card is None:
        raise ApiError(404, "not_found", "no such badge link (revoked, or never made)")
    # Never cached: a revoked link or a re-run must show at once.
    return Response(render_badge(card), media_type="image/svg+xml; charset=utf-8",
                    headers={"Cache-Control": "no-cache, max-age=0"})


def _public(share: CertificationShare) -> dict[str, Any]:
    return {"id": share.id, "certification_id": share.certification_id,
            "prefix": share.prefix,
            "created_at": share.created_at.isoformat() if share.created_at else None,
            "revoked_at": share.revoked_at.isoformat() if share.revoked_at else None}
