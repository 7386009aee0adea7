"""The ASGI guards on a small real Starlette app, driven through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from orchestrator.http_guard import BodyLimit, HeadAsGet, JsonTrustedHost, StateChangeGuard

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


def _app() -> Starlette:
    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/page", page)])
    app.add_middleware(HeadAsGet)
    app.add_middleware(StateChangeGuard, allowed_origins=["https://app.example.com"])
    app.add_middleware(BodyLimit, max_bytes=LIMIT, body_timeout_s=0.5)
    app.add_middleware(JsonTrustedHost, allowed_hosts=["localhost", "*.localhost", "::1"])
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
