"""Hostile and broken input through the real app: text, hosts, cross-site posts, HEAD, paths."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

PHOTO = base64.b64encode(photo_jpeg()).decode()


def _folders(data_dir: Path, bucket: str) -> list[Path]:
    root = data_dir / "blobs" / bucket
    return sorted(root.iterdir()) if root.exists() else []


@pytest.mark.parametrize(
    ("raw_prompt", "code"),
    [
        ('"a garden\\u0000 at dusk"', "U+0000"),  # PostgreSQL text cannot hold NUL
        ('"\\ud800 lone"', "U+D800"),  # legal JSON escape, not encodable as UTF-8
        ('"bell \\u0007"', "U+0007"),
        ('"esc \\u001b[31m"', "U+001B"),
    ],
)
async def test_bad_text_in_prompt_is_a_422_and_nothing_is_written(
    client: httpx.AsyncClient, data_dir: Path, database_url: str, raw_prompt: str, code: str
) -> None:
    body = f'{{"image_base64": "{PHOTO}", "prompt": {raw_prompt}}}'
    r = await client.post(
        "/api/memories", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["error"] == "invalid_text" and err["field"] == "prompt"
    assert code in err["detail"]
    assert _folders(data_dir, "originals") == []  # no empty originals/<id>/ folder
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM memories") == 0
    finally:
        await conn.close()


async def test_bad_text_in_action_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/memories?inline=false", json={"image_base64": PHOTO})).json()
    body = json.dumps({"parent_chunk_id": created["chunk"]["chunk_id"], "action": "w"})
    body = body.replace('"w"', '"w\\udc80"')
    r = await client.post(
        f"/api/memories/{created['memory_id']}/chunks",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["field"] == "action", r.text
    # A surrogate in a UUID field is refused too, and the answer is valid UTF-8 JSON.
    r = await client.post(
        f"/api/memories/{created['memory_id']}/chunks",
        content='{"parent_chunk_id": "\\ud800", "action": "w"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["field"] == "parent_chunk_id"


async def test_foreign_host_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health", headers={"host": "rebound.attacker.example"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_host" and "allowed_hosts" in r.json()["detail"]


async def test_cross_site_form_posts_are_refused(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/memories?inline=false", json={"image_base64": PHOTO})).json()
    memory_id = created["memory_id"]
    form = {"content-type": "text/plain", "origin": "http://attacker.example"}
    for path in ("/api/admin/config/reload", f"/api/memories/{memory_id}/sessions"):
        r = await client.post(path, content=b"x", headers=form)
        assert r.status_code == 403 and r.json()["error"] == "origin_not_allowed", path
        r = await client.post(path, content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["field"] == "content-type", path
    # The player's own bodyless POST (same origin) still works.
    r = await client.post(
        f"/api/memories/{memory_id}/sessions", headers={"origin": "http://localhost"}
    )
    assert r.status_code == 201, r.text


async def test_head_on_get_resources_and_allow_on_405(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/memories?inline=false", json={"image_base64": PHOTO})).json()
    chunk = created["chunk"]["chunk_id"]
    get = await client.get(f"/api/chunks/{chunk}/video")
    head = await client.head(f"/api/chunks/{chunk}/video")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == "video/mp4"
    for path in ("/api/health", f"/api/memories/{created['memory_id']}", "/"):
        assert (await client.head(path)).status_code == 200, path
    assert (await client.head(f"/api/chunks/{created['memory_id']}/video")).status_code == 404
    # (A state-changing method passes the cross-site guard first: JSON content type.)
    r = await client.delete(
        f"/api/chunks/{chunk}/video", headers={"content-type": "application/json"}
    )
    assert r.status_code == 405 and r.json()["error"] == "http_405"
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    r = await client.get("/api/memories")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_generation_failure_detail_has_no_server_path(
    service_factory: Callable[..., Any], data_dir: Path
) -> None:
    svc = await service_factory(gpu={"demand_retries": 0})
    videos = data_dir / "blobs" / "videos"
    shutil.rmtree(videos)
    videos.write_text("not a folder")  # every MP4 write now fails with the path in the error
    async with client_for(svc) as client:
        r = await client.post("/api/memories?inline=false", json={"image_base64": PHOTO})
    assert r.status_code == 502, r.text
    err = r.json()
    assert err["error"] == "generation_failed" and err["job_id"]
    assert str(data_dir) not in err["detail"] and "/tmp" not in err["detail"]
    assert "<path>" in err["detail"] or "Not a directory" in err["detail"]


async def test_request_id_is_echoed_only_when_it_is_a_short_token(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/api/health", headers={"x-request-id": "trace-42.a_b"})
    assert r.headers["x-request-id"] == "trace-42.a_b"
    r = await client.get("/api/health", headers={"x-request-id": "x" * 200})
    assert len(r.headers["x-request-id"]) == 32  # a fresh one: nothing odd reaches the logs
