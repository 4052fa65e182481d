"""Status polls answered ahead of the framework: ``GET /v1/certifications/{id}``.

Polling is the API's hottest path (every CI pipeline polls every job until it finishes). In
FastAPI's stack a poll cost about 1.5 ms of CPU, most of it routing, dependency solving and
middleware around a 0.14 ms read. This ASGI middleware, the outermost of the app's own,
answers those GETs itself with the same functions the documented route uses (authentication:
:func:`service.api.auth.authenticate`; the answer: :func:`service.certifications.poll`), so
the two cannot differ in what they return. Everything else passes through untouched.

Polls run on a small thread pool of their own: they never queue behind uploads holding the
framework's threads, and a handful of threads contend less for the GIL than forty.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service import certifications
from service.api.auth import authenticate, send_error
from service.errors import ApiError

log = logging.getLogger(__name__)

_STATUS_PATH = re.compile(r"/v1/certifications/([^/]+)")
# Threads reading statuses in one API process; the database's read pool holds as many.
POLL_THREADS = 8


class StatusFastPath:
    def __init__(self, app: ASGIApp, threads: int = POLL_THREADS) -> None:
        self.app = app
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="poll")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (_STATUS_PATH.fullmatch(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "GET" else None)
        if match is None:
            await self.app(scope, receive, send)
            return
        svc = scope["app"].state.services
        headers = Headers(scope=scope)
        try:
            caller = await authenticate(svc, headers, self._run)
            polled = await self._run(certifications.poll, svc, caller.tenant_id,
                                     match.group(1), headers.get("if-none-match", ""))
        except ApiError as err:
            await send_error(send, err)
            return
        except Exception as err:  # as the app's handler: JSON, never a plain-text 500
            log.error("unhandled %s on GET %s", type(err).__name__, scope["path"],
                      exc_info=err)
            await send_error(send, ApiError(500, "internal", f"internal error "
                                            f"({type(err).__name__}); it has been logged"))
            return
        raw = [(k.lower().encode(), v.encode()) for k, v in polled.headers.items()]
        if polled.status != 304:  # a 304 has no body, and no length of its own
            raw.append((b"content-length", str(len(polled.body)).encode()))
        await send({"type": "http.response.start", "status": polled.status, "headers": raw})
        await send({"type": "http.response.body", "body": polled.body})

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))
