"""Operators: live reload of policy and budget, refused broken configs, metrics, SSE events."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from orchestrator.app import create_app
from orchestrator.config import load_settings
from orchestrator.service import Service
from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e


def _toml(database_url: str, data_dir: Path, policy: str, extra: str = "") -> str:
    return f"""
[server]
data_dir = "{data_dir}"
[database]
url = "{database_url}"
pool_max = 5
[generation]
frames = 33
width = 160
height = 96
root_pose = "w-8"
[gpu]
max_containers = 2
[speculation]
policy = "{policy}"
min_probability = 0.2
{extra}
[log]
level = "warning"
"""


@pytest.fixture
async def configured(database_url: str, data_dir: Path) -> AsyncIterator[tuple[Service, Path]]:
    path = data_dir / "rewind.toml"
    path.write_text(_toml(database_url, data_dir, "none"))
    svc = await Service.start(load_settings(path), path)
    try:
        yield svc, path
    finally:
        await svc.close()


async def _step(client: httpx.AsyncClient, memory_id: str, parent: str, action: str) -> str:
    r = await client.post(
        f"/api/memories/{memory_id}/chunks?inline=false",
        json={"parent_chunk_id": parent, "action": action},
    )
    assert r.status_code == 200, r.text
    chunk_id: str = r.json()["chunk"]["chunk_id"]
    return chunk_id


async def test_reload_changes_policy_mid_run_and_refuses_broken_files(
    configured: tuple[Service, Path], database_url: str, data_dir: Path
) -> None:
    svc, path = configured
    async with client_for(svc) as client:
        created = (
            await client.post(
                "/api/memories?inline=false",
                json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
            )
        ).json()
        memory_id, parent = created["memory_id"], created["chunk"]["chunk_id"]
        parent = await _step(client, memory_id, parent, "w")

        path.write_text(_toml(database_url, data_dir, "markov", "max_depth = 3"))
        r = await client.post("/api/admin/config/reload", json={})
        assert r.status_code == 200, r.text
        assert r.json()["applied"] is True and r.json()["restart_required"] == []
        config = (await client.get("/api/admin/config")).json()
        assert config["speculation"]["policy"] == "markov"
        assert config["speculation"]["max_depth"] == 3
        assert config["active_arms"][0]["policy"] == "markov"
        assert config["database"]["url"] == "(set)"  # never echo credentials
        await _step(client, memory_id, parent, "w")

        await svc.scheduler.writer.flush()  # hit rows are written behind

        async with svc.db.pool.acquire() as conn:
            policies = [
                r["policy"]
                for r in await conn.fetch("SELECT policy FROM chunk_requests ORDER BY requested_at")
            ]
        assert policies == ["none", "none", "markov"]

        # A broken file is refused with every error named; the running config stays.
        path.write_text(_toml(database_url, data_dir, "markov", "speculative_share = 7\nbogus = 1"))
        r = await client.post("/api/admin/config/reload", json={})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "invalid_config"
        locs = {e["loc"] for e in body["errors"]}
        assert {"speculation.speculative_share", "speculation.bogus"} <= locs
        path.write_text(_toml(database_url, data_dir, "no-such-policy"))
        r = await client.post("/api/admin/config/reload", json={})
        assert r.status_code == 422 and "no-such-policy" in r.json()["detail"]
        path.write_text("[speculation\npolicy = ")
        r = await client.post("/api/admin/config/reload", json={})
        assert r.status_code == 422 and "TOML" in r.json()["detail"]
        assert (await client.get("/api/admin/config")).json()["speculation"]["policy"] == "markov"

        # What cannot change live is reported and kept.
        text = _toml(database_url, data_dir, "uniform").replace("frames = 33", "frames = 61")
        path.write_text(text)
        r = await client.post("/api/admin/config/reload", json={})
        assert r.status_code == 200
        assert r.json()["restart_required"] == ["generation.frames"]
        config = (await client.get("/api/admin/config")).json()
        assert config["generation"]["frames"] == 33
        assert config["speculation"]["policy"] == "uniform"


async def test_metrics_count_requests_and_slots(configured: tuple[Service, Path]) -> None:
    svc, _ = configured
    async with client_for(svc) as client:
        created = (
            await client.post(
                "/api/memories?inline=false",
                json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
            )
        ).json()
        parent = created["chunk"]["chunk_id"]
        await _step(client, created["memory_id"], parent, "d")
        await _step(client, created["memory_id"], parent, "d")  # the same chunk again: a hit
        text = (await client.get("/metrics")).text
    assert 'rewind_chunk_requests_total{arm="default",outcome="miss",policy="none"} 2.0' in text
    assert 'rewind_chunk_requests_total{arm="default",outcome="hit",policy="none"} 1.0' in text
    assert "rewind_gpu_slots 2.0" in text
    assert 'rewind_gpu_slots_busy{kind="speculative"} 0.0' in text
    assert 'rewind_gpu_jobs_total{kind="demand",status="succeeded"} 2.0' in text
    assert "rewind_chunk_wait_seconds_bucket" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_sse_streams_what_is_being_prepared(configured: tuple[Service, Path]) -> None:
    svc, path = configured
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc.settings, svc), port=port, log_config=None, lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            created = (
                await client.post(
                    "/api/memories?inline=false",
                    json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
                )
            ).json()
            memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]
            events: list[tuple[str, dict[str, object]]] = []
            async with client.stream("GET", f"/api/memories/{memory_id}/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                # Policy none so far: nothing is prepared. Switching to uniform starts
                # speculation below the root while we listen.
                path.write_text(path.read_text().replace('policy = "none"', 'policy = "uniform"'))
                await svc.reload()
                name = ""
                async for line in stream.aiter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        events.append((name, json.loads(line.split(":", 1)[1])))
                        if name == "chunk_ready":
                            break
            kinds = [n for n, _ in events]
            assert kinds[0] == "snapshot"
            assert events[0][1]["chunks"] == {root: "ready"}
            started = [e for n, e in events if n == "speculation_started"]
            assert started and all(e["depth"] == 1 for e in started)
            ready = events[-1][1]
            assert ready["kind"] == "speculative"
            assert ready["chunk_id"] in {e["chunk_id"] for e in started}
            r = await client.get(f"/api/memories/{created['session_id']}/events")
            assert r.status_code == 404 and r.json()["field"] == "memory_id"
    finally:
        server.should_exit = True
        await serving
