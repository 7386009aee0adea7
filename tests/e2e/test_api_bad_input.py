"""Bad input gets a clear 4xx naming the field and the rule, and leaves nothing behind."""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import photo_jpeg

pytestmark = pytest.mark.e2e


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _counts(client: httpx.AsyncClient) -> tuple[int, int, int]:
    svc = client.service  # type: ignore[attr-defined]
    await svc.scheduler.writer.flush()  # hit rows are written behind
    async with svc.db.pool.acquire() as conn:
        memories = await conn.fetchval("SELECT count(*) FROM memories")
        chunks = await conn.fetchval("SELECT count(*) FROM chunks")
    originals = sum(1 for p in Path(svc.settings.blob_root, "originals").rglob("*") if p.is_file())
    return memories, chunks, originals


def _bomb_png() -> bytes:
    # 1-bit 12000 x 12000 = 144 Mpx but only a few kB of PNG: a decompression bomb.
    img = Image.new("1", (12000, 12000))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("payload", "status", "error", "field"),
    [
        ({"image_base64": "not base64!!"}, 422, "invalid_base64", "image_base64"),
        (
            {"image_base64": _b64(b"hello, this is text not a photo" * 10)},
            422,
            "not_an_image",
            "image_base64",
        ),
        ({"image_base64": _b64(photo_jpeg()[:2000])}, 422, None, "image_base64"),
        ({"image_base64": _b64(_bomb_png())}, 413, "too_large", "image_base64"),
        ({}, 422, "invalid_request", "image_base64"),
        ({"image_base64": 12}, 422, "invalid_request", "image_base64"),
        ({"image_base64": _b64(photo_jpeg()), "extra": 1}, 422, "invalid_request", "extra"),
        (
            {"image_base64": _b64(photo_jpeg()), "prompt": "x" * 5000},
            422,
            "prompt_too_long",
            "prompt",
        ),
    ],
)
async def test_bad_photo_is_refused_and_nothing_is_written(
    client: httpx.AsyncClient,
    payload: dict[str, object],
    status: int,
    error: str | None,
    field: str,
) -> None:
    r = await client.post("/api/memories", json=payload)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "detail", "field"}
    if error is not None:
        assert body["error"] == error
    assert body["field"] == field
    assert body["detail"]
    assert await _counts(client) == (0, 0, 0)


async def test_oversized_body_is_refused_before_reading(client: httpx.AsyncClient) -> None:
    svc = client.service  # type: ignore[attr-defined]
    limit = svc.settings.limits.max_image_bytes
    big = "A" * (limit * 4 // 3 + 200_000)
    r = await client.post("/api/memories", json={"image_base64": big})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"


async def test_bad_chunk_requests(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/memories", json={"image_base64": _b64(photo_jpeg())})).json()
    other = (
        await client.post("/api/memories", json={"image_base64": _b64(photo_jpeg("astronaut"))})
    ).json()
    mid, root = created["memory_id"], created["chunk"]["chunk_id"]
    url = f"/api/memories/{mid}/chunks"
    cases: list[tuple[str, dict[str, object], int, str | None, str | None]] = [
        (url, {"parent_chunk_id": root, "pose": "w-20, right-10"}, 422, "invalid_pose", "pose"),
        (url, {"parent_chunk_id": root, "pose": "jump-31"}, 422, "invalid_pose", "pose"),
        (url, {"parent_chunk_id": root, "action": "w+s"}, 422, "invalid_action", "action"),
        (
            url,
            {"parent_chunk_id": root, "action": "w", "pose": "w-31"},
            422,
            "invalid_pose",
            "pose",
        ),
        (url, {"parent_chunk_id": root}, 422, "invalid_pose", "pose"),
        (
            url,
            {"parent_chunk_id": "nope", "action": "w"},
            422,
            "invalid_request",
            "parent_chunk_id",
        ),
        (
            url,
            {"parent_chunk_id": str(uuid.uuid4()), "action": "w"},
            404,
            "not_found",
            "parent_chunk_id",
        ),
        (
            url,
            {"parent_chunk_id": other["chunk"]["chunk_id"], "action": "w"},
            404,
            "not_found",
            "parent_chunk_id",
        ),
        (
            url,
            {"parent_chunk_id": root, "action": "w", "session_id": other["session_id"]},
            404,
            "not_found",
            "session_id",
        ),
        (
            f"/api/memories/{uuid.uuid4()}/chunks",
            {"parent_chunk_id": root, "action": "w"},
            404,
            "not_found",
            "memory_id",
        ),
        (
            "/api/memories/not-a-uuid/chunks",
            {"parent_chunk_id": root, "action": "w"},
            422,
            "invalid_request",
            "memory_id",
        ),
    ]
    for path, payload, status, error, field in cases:
        r = await client.post(path, json=payload)
        assert r.status_code == status, (payload, r.text)
        body = r.json()
        assert body["error"] == error, (payload, body)
        assert body["field"] == field, (payload, body)
    svc = client.service  # type: ignore[attr-defined]
    await svc.scheduler.writer.flush()  # hit rows are written behind
    async with svc.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM chunks") == 2  # the two roots only


async def test_unknown_ids_on_get_endpoints(client: httpx.AsyncClient) -> None:
    for path in (
        f"/api/memories/{uuid.uuid4()}",
        f"/api/chunks/{uuid.uuid4()}/video",
        f"/api/chunks/{uuid.uuid4()}/frame",
        f"/api/memories/{uuid.uuid4()}/image",
        "/api/nothing-here",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"] == "not_found"
