"""POST /v1/verifications: decide a VNN-LIB property on an ONNX model (VNN-COMP interchange).

Answered synchronously, with the time bounded by ``timeout`` (at most MAX_TIMEOUT_S): a
property is a single query, not a battery, and nothing is stored.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel

from service.api.schemas import ERRORS
from service.errors import ApiError
from verifiers import DataError, IntakeError
from verifiers.model import load_model

router = APIRouter(prefix="/v1", responses=ERRORS)
MAX_TIMEOUT_S = 300.0
MAX_PROPERTY_BYTES = 16 * 1024 * 1024


class VerificationOut(BaseModel):
    status: str  # holds, violated, unknown
    reason: str
    decided_by: str
    seconds: float
    counterexample: list | None  # the input, in the model's sample shape, when violated
    output: list | None          # onnxruntime's output at the counterexample


def _read_capped(upload: UploadFile, limit: int, what: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"{what}_too_large", f"{what} file exceeds {limit} bytes")
    return data


@router.post("/verifications", response_model=VerificationOut)
def create_verification(
    request: Request,
    model: UploadFile = File(..., description="ONNX model"),
    property: UploadFile = File(..., description="VNN-LIB 1.0 property (.vnnlib)"),
    method: str = Form("alpha-crown", description="ibp, crown or alpha-crown"),
    timeout: float = Form(60.0, gt=0, le=MAX_TIMEOUT_S),
) -> dict:
    started = time.monotonic()  # the timeout covers the checks below, not only the search
    # The bound engine (torch) loads on the first verification, not at the API's start.
    from verifiers.bounds import Method, parse_vnnlib, verify_vnnlib

    try:
        chosen = Method(method)
    except ValueError as exc:
        known = ", ".join(m.value for m in Method)
        raise ApiError(422, "invalid_method", f"unknown method {method!r}; use {known}") from exc
    cap = request.app.state.services.settings.max_upload_bytes
    model_bytes = _read_capped(model, cap, "model")
    text = _read_capped(property, MAX_PROPERTY_BYTES, "property")
    try:
        vnnlib = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_property", "property file is not UTF-8 text") from exc
    # Refuse bad input with a 4xx before the search (which would only answer "unknown").
    try:
        load_model(model_bytes)
    except IntakeError as exc:
        raise ApiError(422, "invalid_model", f"model refused: {exc}") from exc
    try:
        parse_vnnlib(vnnlib)
    except DataError as exc:
        raise ApiError(422, "invalid_property", f"property refused: {exc}") from exc
    result = verify_vnnlib(model_bytes, vnnlib, chosen, timeout, started=started)
    return {
        "status": result.status, "reason": result.reason, "decided_by": result.decided_by,
        "seconds": round(result.seconds, 4),
        "counterexample": None if result.counterexample is None
        else result.counterexample.tolist(),
        "output": None if result.output is None else result.output.tolist(),
    }
