"""Schema, keys, certificates and reports.

Public: ``GET /v1/schema/scorecard`` (the scorecard's JSON Schema) and ``GET /v1/keys`` (the
public keys that sign certificates). Tenant-scoped like every certification read (another
tenant's id answers 404, an unfinished one 409): the certificate and the four renderings
``report.html``, ``report.md``, ``report.xml`` (JUnit) and ``report.svg`` (badge).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from service import certifications
from service.api.schemas import ERRORS
from service.db import Certification
from service.errors import ApiError
from service.signing import Signer, load_or_create_signer
from verifiers.certificate import assemble
from verifiers.examples import to_npz
from verifiers.report import render, render_markdown
from verifiers.schema import scorecard_schema

log = logging.getLogger(__name__)

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "svg": "image/svg+xml; charset=utf-8",
}


def signer(app: FastAPI) -> Signer:
    """The service's key, created on first start (see the lifespan below) or first use."""
    if getattr(app.state, "signer", None) is None:
        app.state.signer = load_or_create_signer(app.state.services.settings.data_dir)
    return app.state.signer


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    log.info("certificate signing key %s", signer(app).key_id)
    yield


router = APIRouter(prefix="/v1", responses=ERRORS, lifespan=_lifespan)


@router.get("/schema/scorecard", tags=["schema"],
            summary="JSON Schema (draft 2020-12) of the scorecard")
def get_scorecard_schema() -> JSONResponse:
    return JSONResponse(scorecard_schema(), media_type="application/schema+json")


@router.get("/keys", tags=["keys"], summary="public keys that sign certificates")
def get_keys(request: Request) -> dict[str, Any]:
    return signer(request.app).keys_document()


def _load(request: Request, job_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(scorecard, stored signature envelope or None); 404 / 409 like the scorecard."""
    svc = request.app.state.services
    card = certifications.scorecard(svc, request.state.tenant_id, job_id)
    with svc.db.session() as s:
        job = s.get(Certification, job_id)
        stored = job.certificate if job is not None else None
    return card, stored


@router.get("/certifications/{job_id}/certificate", tags=["certifications"],
            summary="the signed certificate: scorecard, Ed25519 signature, key id")
def get_certificate(request: Request, job_id: str) -> dict[str, Any]:
    card, stored = _load(request, job_id)
    if stored is None:
        raise ApiError(409, "not_signed", f"certification {job_id} has no certificate (it "
                                          "finished before the service signed scorecards)")
    return assemble(stored, card)


def _report(request: Request, job_id: str, fmt: str) -> Response:
    card, stored = _load(request, job_id)
    certificate = assemble(stored, card) if stored is not None else None
    if fmt == "md":  # the PR comment links to the page a person opens (the dashboard's)
        url = str(request.base_url).rstrip("/") + f"/ui/certifications/{job_id}"
        return Response(render_markdown(card, certificate, report_url=url),
                        media_type=MEDIA_TYPES[fmt],
                        headers={"Content-Disposition": 'inline; filename="report.md"'})
    return Response(render(card, fmt, certificate), media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'inline; filename="report.{fmt}"'})


@router.get("/certifications/{job_id}/report.html", tags=["reports"],
            summary="self-contained HTML report", response_class=Response)
def report_html(request: Request, job_id: str) -> Response:
    return _report(request, job_id, "html")


@router.get("/certifications/{job_id}/report.md", tags=["reports"],
            summary="Markdown summary for a pull-request comment", response_class=Response)
def report_md(request: Request, job_id: str) -> Response:
    return _report(request, job_id, "md")


@router.get("/certifications/{job_id}/report.xml", tags=["reports"],
            summary="JUnit XML, one testcase per criterion", response_class=Response)
def report_xml(request: Request, job_id: str) -> Response:
    return _report(request, job_id, "xml")


@router.get("/certifications/{job_id}/report.svg", tags=["reports"],
            summary="status badge (verdict and standard)", response_class=Response)
def report_svg(request: Request, job_id: str) -> Response:
    return _report(request, job_id, "svg")


@router.get("/certifications/{job_id}/adversarial.npz", tags=["reports"],
            summary="the confirmed adversarial examples the scorecard keeps (.npz)",
            response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "arrays index, x, x_adv, eps, eps_label, norm, "
                                            "attack, label, clean_pred, clean_conf, adv_pred, "
                                            "adv_conf; broken@<norm>@<eps>: every broken "
                                            "index"}})
def adversarial_npz(request: Request, job_id: str) -> Response:
    card, _stored = _load(request, job_id)
    data = to_npz(card)
    if data is None:
        raise ApiError(404, "no_adversarial_examples",
                       f"certification {job_id} keeps no adversarial examples (no attack ran, "
                       "or it finished before scorecards kept them)")
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="adversarial.npz"'})
