"""ASGI middlewares that harden the HTTP API (issue 12): hosts, cross-site posts, bodies, HEAD.

Outermost first, in the order ``HttpGuard`` (what ``install_guards`` adds: the four in one
pure-ASGI layer, one pass over the headers and one wrapped ``send`` / ``receive`` a request)
applies them; each is also a middleware of its own:

- ``JsonTrustedHost``: Starlette's TrustedHostMiddleware (same patterns) answering a JSON 400
  ``invalid_host``: a DNS-rebinding page's requests carry its own Host and are refused.
- ``BodyLimit``: counts body bytes as they arrive, chunked or not, and answers 413 once the
  configured limit is passed (a Content-Length above it is refused before a byte is read); the
  whole body must arrive within ``body_timeout_s`` (else 408). Nothing above the limit is ever
  buffered, so one upload costs at most the limit in memory.
- ``StateChangeGuard``: POST/PUT/PATCH/DELETE need ``Content-Type: application/json`` (a
  cross-site HTML form cannot send it without a CORS preflight, which this service never
  grants) or an ``Origin`` that is the service's own or listed in ``allowed_origins``; a foreign
  Origin is refused outright (403).
- ``HeadAsGet``: HEAD on a GET resource runs the GET and sends its headers only (RFC 9110 9.3.2).

Every refusal is the API's JSON error body ``{"error", "detail", "field"}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette._utils import parse_host_header
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def send_json_error(
    send: Send,
    status: int,
    error: str,
    detail: str,
    *,
    field: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete JSON error response on a raw ASGI ``send``."""
    body = json.dumps({"error": error, "detail": detail, "field": field}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _bracket(host: str) -> str:
    """``::1`` -> ``[::1]``: Starlette keeps the brackets of an IPv6 literal Host."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class JsonTrustedHost(TrustedHostMiddleware):
    """TrustedHostMiddleware with the API's JSON error body (no www redirect)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        super().__init__(app, [_bracket(h) for h in allowed_hosts], www_redirect=False)
        # Checked on every request: exact names in a set, wildcards as one suffix tuple.
        self._exact = frozenset(p for p in self.allowed_hosts if not p.startswith("*"))
        self._suffixes = tuple(p[1:] for p in self.allowed_hosts if p.startswith("*"))

    def allowed(self, host: str) -> bool:
        """Whether ``host`` (already lower-cased, brackets kept) matches a pattern."""
        return host in self._exact or (bool(self._suffixes) and host.endswith(self._suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = Headers(scope=scope).get("host")
        parsed = parse_host_header(raw)
        if parsed is not None and self.allowed(parsed.host.lower()):
            await self.app(scope, receive, send)
            return
        await self.refuse(send, raw)

    async def refuse(self, send: Send, raw: str | None) -> None:
        """Answer the 400 ``invalid_host`` for Host header ``raw`` (None: there was none)."""
        await send_json_error(
            send,
            400,
            "invalid_host",
            f"Host {raw!r} is not served here; allowed hosts: {', '.join(self.allowed_hosts)} "
            "(an operator adds names in [http] allowed_hosts)",
            field="host",
        )


class _Refused(Exception):
    """Raised into the app from ``receive`` when the body is refused (the app must stop)."""


class BodyLimit:
    """Refuse bodies above ``max_bytes`` (413) or slower than ``body_timeout_s`` (408).

    Bytes are counted per ``http.request`` message, so a chunked upload with no Content-Length
    is cut off as soon as it passes the limit. After a refusal the app's own response (if it
    tries one) is dropped and the JSON error is sent instead, with ``Connection: close`` so the
    server stops reading the rest.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        body_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout_s = body_timeout_s
        self.clock = clock

    def _too_large(self, size: str) -> tuple[int, str, str]:
        return (
            413,
            "too_large",
            f"request body is {size} bytes; the limit is {self.max_bytes} bytes "
            "(a photo of [limits] max_image_bytes in base64, plus the JSON around it)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self.refuse_length(send, length)
            return
        await _GuardedBody(self, receive, send).run(scope)

    async def refuse_length(self, send: Send, length: str) -> None:
        """Answer a Content-Length that is too large (413) or not a number (400)."""
        status, error, detail = (
            self._too_large(length)
            if length.isdigit()
            else (400, "invalid_request", f"Content-Length {length!r} is not a number")
        )
        await send_json_error(send, status, error, detail, headers=[(b"connection", b"close")])


class _GuardedBody:
    """One request's body accounting (see ``BodyLimit``)."""

    def __init__(self, limit: BodyLimit, receive: Receive, send: Send) -> None:
        self.limit = limit
        self.receive = receive
        self.send = send
        self.received = 0
        self.complete = False
        self.started = False
        self.refusal: tuple[int, str, str] | None = None
        self.deadline = limit.clock() + limit.body_timeout_s

    async def guarded_receive(self) -> Message:
        if self.refusal is not None:
            raise _Refused
        if self.complete:  # the body is in; what is left to wait for is the disconnect
            return await self.receive()
        remaining = self.deadline - self.limit.clock()
        try:
            # asyncio.timeout: a timer on this task, not a new task per read (wait_for's cost).
            async with asyncio.timeout(max(remaining, 0.0)):
                message = await self.receive()
        except TimeoutError:
            self.refusal = (
                408,
                "body_timeout",
                f"the request body did not arrive within {self.limit.body_timeout_s:g} s "
                f"({self.received} bytes received)",
            )
            raise _Refused from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                self.refusal = self.limit._too_large(f"more than {self.limit.max_bytes}")
                raise _Refused
            self.complete = not message.get("more_body", False)
        return message

    async def guarded_send(self, message: Message) -> None:
        if self.refusal is not None:
            return  # our error replaces whatever the app answers to the broken body
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def run(self, scope: Scope) -> None:
        try:
            await self.limit.app(scope, self.guarded_receive, self.guarded_send)
        except Exception:
            if self.refusal is None:
                raise
        if self.refusal is not None and not self.started:
            status, error, detail = self.refusal
            await send_json_error(
                self.send, status, error, detail, headers=[(b"connection", b"close")]
            )


def _media_type(headers: Headers) -> str:
    return _media_type_of(headers.get("content-type"))


def _media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class StateChangeGuard:
    """Cross-site request forgery guard for state-changing methods (see module docstring)."""

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}

    def _origin_ok(self, origin: str, host: str | None) -> bool:
        origin = origin.rstrip("/").lower()
        if origin in self.allowed_origins:
            return True
        netloc = origin.split("://", 1)[-1]
        return host is not None and netloc == host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in STATE_CHANGING:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is not None:
            if self._origin_ok(origin, headers.get("host")):
                await self.app(scope, receive, send)
                return
            await self.refuse_origin(send, origin)
            return
        if _is_json(_media_type(headers)):
            await self.app(scope, receive, send)
            return
        await self.refuse_media_type(send, scope["method"], headers.get("content-type"))

    async def refuse_origin(self, send: Send, origin: str) -> None:
        """Answer the 403 for a foreign ``origin``."""
        await send_json_error(
            send,
            403,
            "origin_not_allowed",
            f"requests from Origin {origin!r} may not change state here "
            "(an operator lists trusted front-ends in [http] allowed_origins)",
            field="origin",
        )

    async def refuse_media_type(self, send: Send, method: str, content_type: str | None) -> None:
        """Answer the 415 for a state-changing ``method`` without a JSON content type."""
        await send_json_error(
            send,
            415,
            "unsupported_media_type",
            f"{method} requests must send Content-Type: application/json "
            f"(got {content_type or 'none'}); an empty body may be {{}}",
            field="content-type",
        )


class HeadAsGet:
    """Serve HEAD as the GET of the same resource, headers only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        await _head_as_get(self.app, scope, receive, send)


async def _head_as_get(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app`` on HEAD ``scope`` as its GET, sending the response's headers only."""
    state: dict[str, bool] = {"started": False, "ended": False}

    async def head_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["started"] = True
            await send(message)
        elif message["type"] == "http.response.body" and not state["ended"]:
            state["ended"] = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def head_receive() -> Message:
        if state["ended"]:  # stops streaming responses (SSE) whose body nobody reads
            return {"type": "http.disconnect"}
        return await receive()

    await app({**scope, "method": "GET"}, head_receive, head_send)


class HttpGuard:
    """The four guards above in one ASGI layer, same checks, same order, same answers.

    Outermost first: the Host (``JsonTrustedHost``), the Content-Length (``BodyLimit``), the
    cross-site check of a state-changing method (``StateChangeGuard``), HEAD as GET
    (``HeadAsGet``); then the app runs with its body counted and timed (``BodyLimit``). One
    pass over the headers instead of one ``Headers`` per guard, and one middleware frame
    instead of four: the hit path's cost (issue 10).
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str],
        allowed_origins: Sequence[str],
        max_bytes: int,
        body_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.hosts = JsonTrustedHost(app, allowed_hosts)
        self.body = BodyLimit(self._inner, max_bytes, body_timeout_s, clock)
        self.origins = StateChangeGuard(app, allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            await (self.hosts(scope, receive, send) if kind == "websocket" else
                   self.app(scope, receive, send))  # fmt: skip
            return
        host = length = origin = ctype = None
        for name, value in scope.get("headers") or ():  # Headers.get: the first of each
            if name == b"host":
                if host is None:
                    host = value.decode("latin-1")
            elif name == b"content-length":
                if length is None:
                    length = value.decode("latin-1")
            elif name == b"origin":
                if origin is None:
                    origin = value.decode("latin-1")
            elif name == b"content-type" and ctype is None:
                ctype = value.decode("latin-1")
        hosts = self.hosts
        if not hosts.allow_any:
            parsed = parse_host_header(host)
            if parsed is None or not hosts.allowed(parsed.host.lower()):
                await hosts.refuse(send, host)
                return
        limit = self.body
        if length is not None and (not length.isdigit() or int(length) > limit.max_bytes):
            await limit.refuse_length(send, length)
            return
        if scope["method"] in STATE_CHANGING:
            guard = self.origins
            if origin is not None:
                if not guard._origin_ok(origin, host):
                    await guard.refuse_origin(send, origin)
                    return
            elif not _is_json(_media_type_of(ctype)):
                await guard.refuse_media_type(send, scope["method"], ctype)
                return
        await _GuardedBody(limit, receive, send).run(scope)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":
            await _head_as_get(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_guards(app: Any, settings: Any) -> None:
    """Add the guards (one ``HttpGuard`` layer) to a FastAPI ``app`` from ``settings.http``."""
    http = settings.http
    max_body = http.max_body_bytes or settings.limits.max_image_bytes * 4 // 3 + 64 * 1024
    hosts = list(http.allowed_hosts)
    if settings.server.host not in ("0.0.0.0", "::", "", *hosts):
        hosts.append(settings.server.host)
    app.add_middleware(
        HttpGuard,
        allowed_hosts=hosts,
        allowed_origins=http.allowed_origins,
        max_bytes=max_body,
        body_timeout_s=http.body_timeout_s,
    )
