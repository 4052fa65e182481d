"""The v1 endpoints."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from service import certifications
from service.api.schemas import ERRORS, CertificationOut, CertificationPage
from service.certifications import Upload

router = APIRouter(prefix="/v1", responses=ERRORS)


def _tenant(request: Request) -> int:
    return request.state.tenant_id


# Plain `def` handlers: validation runs the model and must not block the event loop.
@router.post("/certifications", status_code=202, response_model=CertificationOut)
def create_certification(
    request: Request,
    model: UploadFile = File(..., description=(
        "ONNX model: .onnx, gzip, or a .zip bundle of the graph and its external data files")),
    data: UploadFile = File(..., description="evaluation set .npz with x float32, y int64"),
    standard: str = Form(..., description="name of the standard, see GET /v1/standards"),
    input_low: float | None = Form(None, description="lowest valid input value"),
    input_high: float | None = Form(None, description="highest valid input value"),
    input_mean: str | None = Form(None, description=(
        "how the model's input units map to the standard's: standard units = x * std + "
        "mean; comma-separated, one number or one per channel")),
    input_std: str | None = Form(None, description="see input_mean; every value > 0"),
    seed: int = Form(0, ge=0, le=2**31 - 1),
    ood: UploadFile | None = File(None, description="optional OOD inputs: .npz with x"),
) -> JSONResponse:
    job = certifications.submit(
        request.app.state.services, _tenant(request),
        Upload(model.file, model.filename or "model.onnx"),
        Upload(data.file, data.filename or "data.npz"),
        standard, seed=seed, input_low=input_low, input_high=input_high,
        input_mean=input_mean, input_std=input_std,
        ood=Upload(ood.file, ood.filename or "ood.npz") if ood is not None else None)
    body = certifications.get(request.app.state.services, _tenant(request), job.id)
    # 200 with the earlier job when an identical submission exists; 202 for new work.
    return JSONResponse(body, status_code=200 if job.reused else 202,
                        headers={"Location": body["links"]["self"],
                                 "X-Robustgate-Reused": "true" if job.reused else "false"})


@router.get("/certifications", response_model=CertificationPage)
def list_certifications(request: Request, limit: int = Query(20, ge=1, le=200),
                        offset: int = Query(0, ge=0, le=2**31 - 1)) -> dict:
    return certifications.list_for(request.app.state.services, _tenant(request), limit, offset)


@router.get("/certifications/{job_id}", response_model=CertificationOut,
            responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}})
def get_certification(request: Request, job_id: str) -> Response:
    """The status. Pollers send back the ETag in ``If-None-Match``: an unchanged status is
    a 304 with no body (the status is still read fresh: a cancel shows on the next poll).

    Over HTTP a GET is answered by :mod:`service.api.status_fast` with the same function
    before it reaches this route; this route documents it and answers in-process callers."""
    polled = certifications.poll(request.app.state.services, _tenant(request), job_id,
                                 request.headers.get("if-none-match", ""))
    return Response(polled.body or None, status_code=polled.status, headers=polled.headers)


@router.get("/certifications/{job_id}/scorecard")
def get_scorecard(request: Request, job_id: str) -> dict:
    return certifications.scorecard(request.app.state.services, _tenant(request), job_id)


@router.delete("/certifications/{job_id}", status_code=202,
               responses={204: {"description": "finished certification removed"}})
def delete_certification(request: Request, job_id: str) -> Response:
    outcome = certifications.cancel_or_delete(request.app.state.services, _tenant(request),
                                              job_id)
    if outcome == "deleted":
        return Response(status_code=204)
    return JSONResponse({"id": job_id, "status": "cancelled"}, status_code=202)
