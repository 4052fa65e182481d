"""A cap on every request body, counted while it streams in.

``Content-Length`` is checked before the body is read (:mod:`service.api.auth`), but a chunked
body has none: without this count it would be parsed (and spooled to disk) in full before
any handler saw it. Past the cap the application sees the client disconnect, whatever it
was writing is dropped, and the caller gets a 413 JSON error.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Form fields and multipart framing around the files.
FORM_OVERHEAD = 1024 * 1024


def body_limit(max_upload_bytes: int) -> int:
    """The largest request body: two files at the upload limit plus the form around them."""
    return 2 * max_upload_bytes + FORM_OVERHEAD


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        received = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the app's answer to the "disconnect": ours goes out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            body = json.dumps({"error": {
                "code": "request_too_large",
                "message": f"request body exceeds the limit of {self.limit} bytes "
                           "(ROBUSTGATE_MAX_UPLOAD_BYTES per file); nothing was stored"}})
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"connection", b"close")]})
            await send({"type": "http.response.body", "body": body.encode()})
