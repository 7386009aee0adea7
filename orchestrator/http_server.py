"""uvicorn with limits a public socket needs: header timeout, header size, connection cap.

uvicorn (0.54) times out only idle keep-alive connections, and only after a first response: a
connection that never completes its headers (slowloris), or never sends a byte, is held
forever, and ``limit_concurrency`` answers plain-text 503s while still accepting connections.
``guarded_protocol`` wraps uvicorn's own HTTP/1.1 protocol class (httptools when installed, else
h11: what ``http="auto"`` picks) with:

- a header deadline: from the connection's first byte wait (and again after every response),
  the request line and headers must be complete within ``header_timeout_s``, else 408;
- a header size cap: more than ``max_header_bytes`` before the headers end is a 431 (h11 also
  gets it as ``h11_max_incomplete_event_size``);
- a connection cap: past ``max_connections`` open connections a new one gets a 503 with
  ``Retry-After`` and is closed at once, before it can hold anything.

Every such answer is the API's JSON error body, then the connection is closed. Body limits and
body timeouts are ASGI-level (``orchestrator.http_guard.BodyLimit``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from orchestrator.config import Settings

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Unavailable",
}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits (seconds, bytes, connections), from ``[http]``."""

    header_timeout_s: float
    max_header_bytes: int
    max_connections: int


def raw_json_response(status: int, error: str, detail: str, retry_after_s: int | None) -> bytes:
    """A complete HTTP/1.1 response with the JSON error body and ``Connection: close``."""
    body = json.dumps({"error": error, "detail": detail, "field": None}).encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after_s is not None:
        head.append(f"retry-after: {retry_after_s}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _GuardMixin:
    """Header deadline, header size and connection cap on top of a uvicorn HTTP protocol.

    Relies on the attributes uvicorn's H11Protocol and HttpToolsProtocol both have:
    ``transport``, ``loop``, ``connections`` (the server's set) and ``cycle`` (the current
    request, created when its headers are complete).
    """

    limits: ConnectionLimits
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    cycle: Any

    def _refuse(self, status: int, error: str, detail: str, retry: int | None = None) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(raw_json_response(status, error, detail, retry))
            self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._header_bytes = 0
        self._cycle_waited = self.cycle
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.limits.header_timeout_s, self._on_header_timeout
        )

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        self._header_timer = None

    def _awaiting_headers(self) -> bool:
        return getattr(self, "_header_timer", None) is not None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        self._refuse(
            408,
            "header_timeout",
            f"the request headers did not arrive within {self.limits.header_timeout_s:g} s",
        )

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.limits.max_connections:
            self._refuse(
                503,
                "too_many_connections",
                f"the server holds its limit of {self.limits.max_connections} connections",
                retry=1,
            )
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            # Counted before parsing, so h11 and httptools refuse alike (and h11 never
            # buffers past the cap). The headers end at the first blank line.
            end = data.find(b"\r\n\r\n")
            size = self._header_bytes + (len(data) if end < 0 else end + 4)
            if size > self.limits.max_header_bytes:
                self._refuse(
                    431,
                    "headers_too_large",
                    f"request headers exceed {self.limits.max_header_bytes} bytes",
                )
                return
            self._header_bytes = size
        super().data_received(data)  # type: ignore[misc]
        if self._awaiting_headers() and self.cycle is not self._cycle_waited:
            self._disarm()  # a new request's headers are complete

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a malformed request, as the API's JSON error body."""
        self._refuse(400, "invalid_http", msg)

    def on_response_complete(self) -> None:
        self._arm()  # the next request on this keep-alive connection gets its own deadline
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is not self._cycle_waited and not self.cycle.response_complete:
            self._disarm()  # a pipelined request was already waiting

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


def guarded_protocol(limits: ConnectionLimits, base: type[asyncio.Protocol] | None = None) -> type:
    """uvicorn's auto HTTP/1.1 protocol class (or ``base``) with ``limits`` enforced."""
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        base = AutoHTTPProtocol
    return type(f"Guarded{base.__name__}", (_GuardMixin, base), {"limits": limits})


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` from ``[http]``."""
    http = settings.http
    limits = ConnectionLimits(http.header_timeout_s, http.max_header_bytes, http.max_connections)
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": http.keep_alive_s,
        "h11_max_incomplete_event_size": http.max_header_bytes,
        # Bounded shutdown: open requests and streams (SSE) are cancelled after this.
        "timeout_graceful_shutdown": http.graceful_shutdown_s,
    }
