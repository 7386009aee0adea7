"""The hit path's shortcuts give what the long way gives: ids (``orchestrator.idcache``), the
pre-serialised chunk answer (``orchestrator.api.post_chunk``) and request ids."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from orchestrator.access_log import new_request_id
from orchestrator.api import _CHUNK_CREATED, JSON
from orchestrator.idcache import IdCache
from orchestrator.schemas import ChunkCreated, ChunkOut


def test_id_cache_converts_as_uuid_does_and_stays_bounded() -> None:
    cache = IdCache(limit=8)
    ids = [uuid.uuid4() for _ in range(20)]
    for u in ids * 2:
        assert cache.text(u) == str(u)
        assert cache.parse(str(u)) == u and cache.parse(str(u).upper()) == u
    assert cache.parse_opt(None) is None
    assert len(cache._parsed) <= 8 and len(cache._texts) <= 8
    with pytest.raises(ValueError):
        cache.parse("not-a-uuid")


def test_request_ids_are_unique_32_hex_digits() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_draws_its_own_request_id_prefix() -> None:
    read, write = os.pipe()
    parent = new_request_id()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 32 and child[:16] != parent[:16]


def _created(**chunk: object) -> ChunkCreated:
    cid = uuid.uuid4()
    fields: dict[str, object] = {
        "chunk_id": cid,
        "pose": "w-31",
        "chunk_index": 1,
        "video_url": f"/api/chunks/{cid}/video",
        "last_frame_url": f"/api/chunks/{cid}/frame",
        **chunk,
    }
    return ChunkCreated(chunk=ChunkOut.model_validate(fields), session_id=uuid.uuid4())


CASES = [
    _created(),
    _created(outcome="hit", wait_ms=0.0, job_id=uuid.uuid4(), parent_chunk_id=uuid.uuid4()),
    _created(outcome="miss", wait_ms=123456.7, action="w+right", video_base64="AAAA"),
    _created(outcome="inflight", wait_ms=1e16, pose="a-15, right-16"),
    _created(action='é\u2028\x1f"\\', wait_ms=0.1 + 0.2),
]


@pytest.mark.parametrize("created", CASES)
async def test_post_chunk_bytes_are_what_response_model_writes(created: ChunkCreated) -> None:
    """FastAPI's own ``response_model`` path against the route's pre-serialised answer."""
    app = FastAPI()

    @app.get("/model", response_model=ChunkCreated)
    async def model() -> ChunkCreated:
        return created

    @app.get("/bytes", response_model=ChunkCreated)
    async def raw() -> Response:
        return Response(_CHUNK_CREATED.to_json(created, by_alias=True), media_type=JSON)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        a, b = await c.get("/model"), await c.get("/bytes")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content
    assert a.headers.items() == b.headers.items()
