"""The seed API end to end: real photo in, chained real MP4 chunks out, through HTTP."""

from __future__ import annotations

import asyncio
import base64
import uuid

import httpx
import pytest

from tests.conftest import photo_jpeg, photo_png
from tests.e2e.conftest import SMALL
from tests.videoutil import mean_abs_diff, png_array, probe

pytestmark = pytest.mark.e2e


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _create(client: httpx.AsyncClient, **extra: object) -> dict[str, object]:
    r = await client.post(
        "/api/memories", json={"image_base64": _b64(photo_jpeg()), "prompt": "a cat", **extra}
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_memory_and_three_chained_chunks(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    chunk = created["chunk"]
    assert isinstance(chunk, dict)
    assert chunk["pose"] == SMALL["root_pose"] and chunk["chunk_index"] == 0
    assert created["audio_base64"] is None
    scene = created["scene"]
    assert isinstance(scene, dict) and scene["description"] and scene["sound_keywords"]
    root = probe(base64.b64decode(chunk["video_base64"]))
    assert (root.frames, root.width, root.height) == (33, 160, 96)
    assert round(root.fps) == 24 and root.codec == "h264" and root.pix_fmt == "yuv420p"

    memory_id = created["memory_id"]
    parent = chunk
    for index, action in enumerate(["w", "left", "w+right"], start=1):
        r = await client.post(
            f"/api/memories/{memory_id}/chunks",
            json={"parent_chunk_id": parent["chunk_id"], "action": action},
        )
        assert r.status_code == 200, r.text
        child = r.json()["chunk"]
        assert child["chunk_index"] == index
        assert child["parent_chunk_id"] == parent["chunk_id"]
        assert child["action"] == action
        assert child["outcome"] == "miss"  # policy none: nothing was prepared
        video = base64.b64decode(child["video_base64"])
        p = probe(video)
        assert (p.frames, p.width, p.height) == (33, 160, 96)
        # Continuity: the child starts where its parent ended (its stored last frame).
        frame = await client.get(f"/api/chunks/{parent['chunk_id']}/frame")
        assert frame.status_code == 200
        assert mean_abs_diff(p.first, png_array(frame.content)) < 6
        parent = child

    tree = (await client.get(f"/api/memories/{memory_id}")).json()
    assert len(tree["chunks"]) == 4
    assert [c["chunk_index"] for c in tree["chunks"]] == [0, 1, 2, 3]
    assert all(c["status"] == "ready" and c["video_url"] for c in tree["chunks"])
    assert tree["scene"]["description"] == scene["description"]
    image = await client.get(tree["original_image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"


async def test_repeat_is_a_hit_and_concurrent_requests_share_one_job(
    client: httpx.AsyncClient,
) -> None:
    created = await _create(client, prompt=None)
    memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]  # type: ignore[index]
    url = f"/api/memories/{memory_id}/chunks?inline=false"
    body = {"parent_chunk_id": root, "pose": "D-8"}
    first, second, third = await asyncio.gather(*(client.post(url, json=body) for _ in range(3)))
    ids = {r.json()["chunk"]["chunk_id"] for r in (first, second, third)}
    assert len(ids) == 1
    assert all(r.json()["chunk"]["video_base64"] is None for r in (first, second, third))
    again = await client.post(url, json={"parent_chunk_id": root, "action": "d"})
    assert again.json()["chunk"]["chunk_id"] in ids
    assert again.json()["chunk"]["outcome"] == "hit"
    svc = client.service  # type: ignore[attr-defined]
    await svc.scheduler.writer.flush()  # hit rows are written behind
    async with svc.db.pool.acquire() as conn:
        jobs = await conn.fetchval(
            "SELECT count(*) FROM gpu_jobs WHERE chunk_id = $1", uuid.UUID(ids.pop())
        )
        outcomes = await conn.fetch("SELECT outcome FROM chunk_requests ORDER BY requested_at")
    assert jobs == 1
    assert [r["outcome"] for r in outcomes].count("hit") >= 1


async def test_video_supports_http_range(client: httpx.AsyncClient) -> None:
    created = await _create(client)
    url = created["chunk"]["video_url"]  # type: ignore[index]
    full = await client.get(url)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    part = await client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.headers["content-range"].startswith("bytes 0-99/")
    assert part.content == full.content[:100]


async def test_health_reports_every_part(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "healthy"
    assert h["database"]["status"] == "ok"
    assert h["gpu"]["backend"] == "local" and h["gpu"]["slots"] == 2
    assert h["storage"]["status"] == "ok"
    assert h["soundscape"]["status"] == "not configured"
    assert h["scene"]["status"] == "ok"


async def test_png_photo_with_default_prompt(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/memories", json={"image_base64": _b64(photo_png("coffee"))})
    assert r.status_code == 200, r.text
    assert r.json()["scene"]["mood"]
