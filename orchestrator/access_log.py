"""The access log: one structlog line per HTTP request, with its duration, route and outcome.

``AccessLog`` is a pure ASGI middleware (outermost), so it times the whole exchange, including
streamed bodies (MP4 ranges, SSE) and errors turned into JSON by the exception handlers. It binds
``request_id``, ``method`` and ``path`` to structlog's context for every line logged while the
request runs, sets the ``x-request-id`` response header (the client's own, or a new one), and at
the end logs event ``request`` with:

- ``status``: the response status (500 when the app raised before answering),
- ``duration_ms``: wall milliseconds from the request's arrival to its last body byte,
- ``route``: the matched route template (``/api/memories/{memory_id}/chunks``), None if none,
- anything a route added with ``note`` (chunk requests add ``outcome``: hit / inflight / miss,
  plus ``chunk_id`` and ``wait_ms``).

uvicorn's own access line is switched off (``uvicorn.run(access_log=False)``): it would be a
second, plain line per request without the duration.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextvars import ContextVar
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.logs import BoundOnce

_log = BoundOnce("orchestrator.access")

_notes: ContextVar[dict[str, Any] | None] = ContextVar("rewind_access_notes", default=None)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


_ids: tuple[int, str, itertools.count[int]] = (0, "", itertools.count())


def new_request_id() -> str:
    """A new request id: 32 hex digits, like ``uuid4().hex``, unique across processes (a
    random 64-bit prefix drawn once per process id, then a counter). ``uuid4`` read
    ``os.urandom`` and built a UUID on every request (~5 us, a syscall); the id names a
    request in logs and error messages and need not be unguessable."""
    global _ids
    pid, prefix, counter = _ids
    if pid != os.getpid():  # first call, or a forked child: its own prefix
        pid, prefix, counter = _ids = (os.getpid(), os.urandom(8).hex(), itertools.count())
    return f"{prefix}{next(counter):016x}"


def note(**fields: Any) -> None:
    """Add ``fields`` to the current request's access line (no-op outside a request).

    Safe from route handlers: the middleware puts a fresh dict in a context variable before
    calling the app, and tasks the app starts share that dict (they copy the context, not it).
    """
    notes = _notes.get()
    if notes is not None:
        notes.update(fields)


class AccessLog:
    """ASGI middleware writing the access line (see the module docstring). HTTP only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = ""
        for name, value in scope.get("headers") or ():  # no dict of every header per request
            if name == b"x-request-id":
                given = value.decode("latin-1")
        # The client's id only when it is a short token (a line break would forge log lines).
        request_id = given if given and _REQUEST_ID.match(given) else new_request_id()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id, method=scope["method"], path=scope["path"]
        )
        notes: dict[str, Any] = {}
        token = _notes.set(notes)
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() != b"x-request-id"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            _notes.reset(token)
            route = scope.get("route")
            _log.get().info(
                "request",
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                route=getattr(route, "path", None),
                **notes,
            )
