"""Response shapes, for the OpenAPI document at /docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class CertificationOut(BaseModel):
    id: str
    status: str  # queued, running, succeeded, errored, cancelled
    stage: str
    progress: float
    verdict: str | None  # PASS, FAIL, INCONCLUSIVE once succeeded
    error: str | None
    seed: int
    input_range: list[float | None]
    standard: dict[str, Any]
    model: dict[str, Any]
    dataset: dict[str, Any]
    ood_dataset: dict[str, Any] | None = None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    # Running jobs: time left from measured throughput (verifiers.estimate); else null.
    estimate: dict[str, Any] | None = None
    links: dict[str, str]


class CertificationPage(BaseModel):
    items: list[CertificationOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class StandardOut(BaseModel):
    name: str
    version: int
    sha256: str
    description: str
    norm: str
    eps: list[str]
    criteria: list[dict[str, Any]]


ERRORS = {code: {"model": ErrorBody} for code in (401, 404, 409, 413, 422, 503)}
