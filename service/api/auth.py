"""Authentication before the body is read: an anonymous upload is refused unread."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from service.api.body_limit import body_limit
from service.auth import authenticate
from service.errors import ApiError

# Paths under /v1 anyone may read.
PUBLIC_PREFIXES = ("/v1/standards", "/v1/schema", "/v1/keys", "/v1/metrics")


class TokenAuthMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        if not path.startswith("/v1/") or path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        try:
            request.state.tenant_id = self._tenant(request)
            self._check_length(request)
        except ApiError as err:
            headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
            return JSONResponse(err.body(), status_code=err.status, headers=headers)
        return await call_next(request)

    def _tenant(self, request: Request) -> int:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated",
                           "missing bearer token: send 'Authorization: Bearer <token>'")
        svc = request.app.state.services
        with svc.db.session() as s:
            caller = authenticate(s, token.strip())
        if caller is None:
            raise ApiError(401, "invalid_token", "the bearer token is not valid (unknown, "
                                                 "revoked or expired)")
        request.state.caller = caller
        return caller.tenant_id

    def _check_length(self, request: Request) -> None:
        # Two files under the cap each plus form overhead; larger bodies are refused unread
        # (a chunked body, with no length, is counted as it streams: BodyLimitMiddleware).
        limit = body_limit(request.app.state.services.settings.max_upload_bytes)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(413, "request_too_large",
                           f"request body of {length} bytes exceeds the limit of {limit} bytes")
