"""Connection-level limits on a real uvicorn socket: slowloris, idle, header size, cap, bodies.

The service's app runs under uvicorn with ``orchestrator.http_server.uvicorn_options`` (what
``rewind serve`` uses), with short limits so each case takes about a second. Clients are raw
sockets, so nothing in between buffers or retries.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn

from orchestrator.app import create_app
from orchestrator.http_server import uvicorn_options
from tests.e2e.serve import free_port

pytestmark = pytest.mark.e2e

LIMITS = {
    "header_timeout_s": 1.0,
    "body_timeout_s": 1.0,
    "max_header_bytes": 4096,
    "max_connections": 4,
    "max_body_bytes": 256 * 1024,
}


@pytest.fixture(params=["auto", "h11"])
async def port(
    request: pytest.FixtureRequest, service_factory: Callable[..., Any]
) -> AsyncIterator[int]:
    """A uvicorn on the service's app: httptools (what "auto" picks here) and h11."""
    svc = await service_factory(http=LIMITS)
    options = uvicorn_options(svc.settings)
    if request.param == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol

        from orchestrator.http_server import ConnectionLimits, guarded_protocol

        http = svc.settings.http
        limits = ConnectionLimits(
            http.header_timeout_s, http.max_header_bytes, http.max_connections
        )
        options["http"] = guarded_protocol(limits, H11Protocol)
    number = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(svc.settings, svc), port=number, log_config=None, lifespan="off", **options
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield number
    server.should_exit = True
    await serving


async def _read_response(
    reader: asyncio.StreamReader, timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    raw = await asyncio.wait_for(reader.read(65536), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body) if body else {}


async def test_slowloris_headers_get_408_and_the_connection_closes(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
    for _ in range(3):  # a header that never ends, a byte at a time
        await asyncio.sleep(0.3)
        writer.write(b"a")
    status, body = await _read_response(reader)
    assert status == 408 and body["error"] == "header_timeout"
    assert 0.9 < time.monotonic() - t0 < 3.0
    assert await reader.read() == b""  # closed
    writer.close()


async def test_idle_connection_is_closed_after_the_header_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, body = await _read_response(reader)
    assert status == 408 and body["error"] == "header_timeout"
    assert await reader.read() == b""
    writer.close()


async def test_keep_alive_connection_gets_a_new_deadline_per_request(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert first.startswith(b"HTTP/1.1 200")
    length = int(
        next(h for h in first.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
            b":"
        )[1]
    )
    await reader.readexactly(length)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: loc")  # then stalls
    status, _ = await _read_response(reader)
    assert status == 408
    writer.close()


async def test_oversized_headers_get_431(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # One write, the headers never finished: 10 KB of them against a 4 KB limit.
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(10))
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n" + filler)
    status, body = await _read_response(reader)
    assert status == 431 and body["error"] == "headers_too_large"
    writer.close()


async def test_malformed_request_line_gets_a_json_400(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    status, body = await _read_response(reader)
    assert status == 400 and body["error"] == "invalid_http"
    writer.close()


async def test_connections_past_the_cap_get_503_and_are_closed(port: int) -> None:
    held = [
        await asyncio.open_connection("127.0.0.1", port) for _ in range(LIMITS["max_connections"])
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    status, body = await _read_response(reader, timeout=2)
    assert status == 503 and body["error"] == "too_many_connections"
    assert await reader.read() == b""
    writer.close()
    for _, w in held:
        w.close()


async def test_chunked_body_past_the_limit_is_refused_while_streaming(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/memories HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 65536
    sent = 0
    status = None
    try:
        for _ in range(64):  # 4 MiB offered, 256 KiB allowed
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
            if reader.at_eof() or len(reader._buffer) > 0:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
    except ConnectionError:
        pass
    status, body = await _read_response(reader)
    assert status == 413 and body["error"] == "too_large"
    assert sent < 64 * 65536  # the server stopped reading long before the end
    writer.close()


async def test_slow_body_gets_408(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/memories HTTP/1.1\r\nHost: localhost\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"image_base64": "'
    )
    status, body = await _read_response(reader, timeout=5)
    assert status == 408 and body["error"] == "body_timeout"
    writer.close()
