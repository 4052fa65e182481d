"""``/v1/tokens``: an admin token creates, lists and revokes tenant tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.api.schemas import ERRORS
from service.auth import issue_token, token_record
from service.db import ApiToken
from service.errors import ApiError

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["tokens"])


class TokenIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=128, description="created if new")
    name: str = Field("", max_length=128, description="what the token is for")
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    admin: bool = Field(False, description="may manage tokens too")


class TokenOut(BaseModel):
    id: int
    tenant: str | None
    name: str
    prefix: str
    admin: bool
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None


class TokenCreated(TokenOut):
    token: str  # shown once; only its sha256 is stored


class TokenList(BaseModel):
    tokens: list[TokenOut]


def _require_admin(request: Request) -> None:
    caller = getattr(request.state, "caller", None)
    if caller is None or not caller.is_admin:
        raise ApiError(403, "admin_required", "managing tokens needs an admin token (see "
                                              "$ROBUSTGATE_DATA_DIR/admin-token, or "
                                              "`robustgate token create --admin`)")


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create(request: Request, body: TokenIn) -> dict:
    _require_admin(request)
    expires = (datetime.now(UTC) + timedelta(days=body.expires_in_days)
               if body.expires_in_days is not None else None)
    with request.app.state.services.db.session() as s:
        try:
            token, row = issue_token(s, body.tenant, name=body.name, expires_at=expires,
                                     admin=body.admin)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        return token_record(s, row) | {"token": token}


@router.get("/tokens", response_model=TokenList)
def list_tokens(request: Request) -> dict:
    _require_admin(request)
    with request.app.state.services.db.session() as s:
        rows = s.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        return {"tokens": [token_record(s, r) for r in rows]}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke(request: Request, token_id: int) -> Response:
    _require_admin(request)
    with request.app.state.services.db.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise ApiError(404, "not_found", f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
    request.app.state.services.tokens.forget(token_id)  # this process: at once
    return Response(status_code=204)
