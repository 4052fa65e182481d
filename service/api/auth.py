"""Authentication before the body is read: an anonymous upload is refused unread.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, whose task group and memory
streams cost more than a status poll itself). A token verified in the last few seconds is
answered from :class:`service.auth.TokenCache` without touching the database; otherwise the
lookup runs in the thread pool so the event loop never waits on the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.body_limit import body_limit
from service.auth import Caller
from service.errors import ApiError

if TYPE_CHECKING:
    from service.services import Services

RunSync = Callable[..., Awaitable[Any]]

# Paths under /v1 anyone may read.
PUBLIC_PREFIXES = ("/v1/standards", "/v1/schema", "/v1/keys", "/v1/metrics")


class TokenAuthMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or not path.startswith("/v1/")
                or path.startswith(PUBLIC_PREFIXES)):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            caller = await authenticate(scope["app"].state.services, headers)
            self._check_length(scope, headers)
        except ApiError as err:
            await send_error(send, err)
            return
        state = scope.setdefault("state", {})
        state["caller"] = caller
        state["tenant_id"] = caller.tenant_id
        await self.app(scope, receive, send)

    def _check_length(self, scope: Scope, headers: Headers) -> None:
        # Two files under the cap each plus form overhead; larger bodies are refused unread
        # (a chunked body, with no length, is counted as it streams: BodyLimitMiddleware).
        limit = body_limit(scope["app"].state.services.settings.max_upload_bytes)
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise ApiError(413, "request_too_large",
                           f"request body of {length} bytes exceeds the limit of {limit} bytes")


async def authenticate(svc: Services, headers: Headers,
                       run_sync: RunSync = to_thread.run_sync) -> Caller:
    """The caller of a request's bearer token, or ApiError 401. A token verified in the last
    few seconds costs no query; otherwise the query runs through ``run_sync`` (a thread)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthenticated",
                       "missing bearer token: send 'Authorization: Bearer <token>'")
    caller = svc.tokens.lookup(token)
    if caller is None:
        caller = await run_sync(_verify, svc, token)
    if caller is None:
        raise ApiError(401, "invalid_token", "the bearer token is not valid (unknown, "
                                             "revoked or expired)")
    return caller


def _verify(svc, token: str) -> Caller | None:
    with svc.db.session() as s:
        return svc.tokens.verify(s, token)


async def send_error(send: Send, err: ApiError) -> None:
    """The error as the API's JSON error body, straight to ASGI (outside FastAPI's
    handlers); a 401 says which scheme to use."""
    extra = [(b"www-authenticate", b"Bearer")] if err.status == 401 else []
    extra += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
    body = JSONResponse(err.body()).body  # byte for byte what the app's handlers send
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
