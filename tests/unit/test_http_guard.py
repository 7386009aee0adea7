"""The ASGI guards on a small real Starlette app, driven through httpx's ASGI transport.

Every test runs twice: on the four guards as separate middlewares, and on ``HttpGuard`` (the
four in one layer, what the service installs); both must answer alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from orchestrator.http_guard import (
    BodyLimit,
    HeadAsGet,
    HttpGuard,
    JsonTrustedHost,
    StateChangeGuard,
)

LIMIT = 64 * 1024
seen: dict[str, int] = {}


async def echo(request: Request) -> JSONResponse:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        seen["max"] = max(seen.get("max", 0), total)
    return JSONResponse({"bytes": total})


async def page(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello world")


HOSTS = ["localhost", "*.localhost", "::1"]
ORIGINS = ["https://app.example.com"]
_stack = {"combined": False}


@pytest.fixture(autouse=True, params=["separate", "combined"])
def stack(request: pytest.FixtureRequest) -> str:
    """Which middleware stack ``_client`` builds (each test runs on both)."""
    _stack["combined"] = request.param == "combined"
    return str(request.param)


def _app() -> Starlette:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/page", page)])
    if _stack["combined"]:
        app.add_middleware(
            HttpGuard, allowed_hosts=HOSTS, allowed_origins=ORIGINS, max_bytes=LIMIT,
            body_timeout_s=0.5,
        )  # fmt: skip
        return app
    app.add_middleware(HeadAsGet)
    app.add_middleware(StateChangeGuard, allowed_origins=ORIGINS)
    app.add_middleware(BodyLimit, max_bytes=LIMIT, body_timeout_s=0.5)
    app.add_middleware(JsonTrustedHost, allowed_hosts=HOSTS)
    return app


def _client(host: str = "localhost") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url=f"http://{host}")


async def _chunks(n: int, size: int, pause_s: float = 0.0) -> AsyncIterator[bytes]:
    for _ in range(n):
        if pause_s:
            await asyncio.sleep(pause_s)
        yield b"x" * size


JSON = {"content-type": "application/json"}


async def test_chunked_body_is_cut_at_the_limit() -> None:
    seen.clear()
    async with _client() as c:
        r = await c.post("/echo", content=_chunks(1000, 4096), headers=JSON)  # 4 MB, chunked
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert r.headers["connection"] == "close"
    assert seen["max"] <= LIMIT  # the app never held more than the limit


async def test_content_length_above_the_limit_is_refused_unread() -> None:
    seen.clear()
    async with _client() as c:
        r = await c.post("/echo", content=b"x" * (LIMIT + 1), headers=JSON)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert seen == {}


async def test_body_under_the_limit_passes() -> None:
    async with _client() as c:
        r = await c.post("/echo", content=_chunks(10, 1000), headers=JSON)
    assert r.status_code == 200 and r.json() == {"bytes": 10_000}


async def test_slow_body_times_out() -> None:
    async with _client() as c:
        r = await c.post("/echo", content=_chunks(5, 10, pause_s=0.3), headers=JSON)
    assert r.status_code == 408 and r.json()["error"] == "body_timeout"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),  # a cross-site form's content type
        ({}, 415),
        ({"content-type": "application/json; charset=utf-8"}, 200),
        ({"content-type": "application/merge-patch+json"}, 200),
        ({"origin": "http://evil.example", "content-type": "text/plain"}, 403),
        ({"origin": "http://evil.example", "content-type": "application/json"}, 403),
        ({"origin": "http://localhost"}, 200),  # the service's own pages
        ({"origin": "https://app.example.com"}, 200),  # [http] allowed_origins
    ],
)
async def test_state_changing_requests_need_json_or_a_trusted_origin(
    headers: dict[str, str], status: int
) -> None:
    async with _client() as c:
        r = await c.post("/echo", headers=headers)
    assert r.status_code == status, r.text
    if status != 200:
        assert set(r.json()) == {"error", "detail", "field"}


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost", 200),
        ("localhost:8000", 200),
        ("rewind.localhost", 200),
        ("[::1]:8000", 200),
        ("attacker.example", 400),
        ("localhost.attacker.example", 400),
    ],
)
async def test_only_configured_hosts_are_served(host: str, status: int) -> None:
    async with _client() as c:
        r = await c.get("/page", headers={"host": host})
    assert r.status_code == status
    if status == 400:
        assert r.json()["error"] == "invalid_host" and r.json()["field"] == "host"


async def test_head_is_the_get_without_a_body() -> None:
    async with _client() as c:
        get = await c.get("/page")
        head = await c.head("/page")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "11"


def _separate_stack() -> Starlette:
    _stack["combined"] = False
    return _app()


def _combined_stack() -> Starlette:
    _stack["combined"] = True
    return _app()


async def _raw(app: Starlette, method: str, path: str, headers: list[tuple[bytes, bytes]],
               body: bytes = b"") -> list[dict[str, object]]:  # fmt: skip
    """Every message ``app`` sends for one raw ASGI request (Host and all headers as given)."""
    sent: list[dict[str, object]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("localhost", 80)}  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("GET", "/page", [], b""),  # no Host at all
        ("GET", "/page", [(b"host", b"attacker.example"), (b"host", b"localhost")], b""),
        ("GET", "/page", [(b"host", b"localhost"), (b"host", b"attacker.example")], b""),
        ("POST", "/echo", [(b"host", b"localhost"), (b"content-length", b"abc")], b""),
        ("POST", "/echo", [(b"host", b"localhost"), (b"content-length", b"99999999")], b""),
        ("POST", "/echo", [(b"host", b"localhost"), (b"content-type", b"text/plain")], b"x"),
        ("POST", "/echo", [(b"host", b"localhost"), (b"origin", b"http://localhost/")], b"xy"),
        ("POST", "/echo", [(b"host", b"localhost:80"), (b"origin", b"http://localhost")], b""),
        ("POST", "/echo", [(b"host", b"localhost"), (b"content-type", b"APPLICATION/JSON")], b"{}"),
        ("HEAD", "/page", [(b"host", b"rewind.localhost")], b""),
        ("HEAD", "/echo", [(b"host", b"localhost")], b""),
        ("DELETE", "/page", [(b"host", b"localhost")], b""),
    ],
)
async def test_the_combined_guard_answers_as_the_four_do(
    method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    separate = await _raw(_separate_stack(), method, path, headers, body)
    combined = await _raw(_combined_stack(), method, path, headers, body)
    assert combined == separate
    assert separate and separate[0]["type"] == "http.response.start"
