"""A viewer who leaves while their chunk is generated is counted as abandoned, not served.

Runs the app under a real uvicorn socket (an in-process ASGI client never disconnects), sends a
chunk request from a raw socket and closes it while the generation runs.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from orchestrator.app import create_app
from orchestrator.http_server import uvicorn_options
from tests.conftest import photo_jpeg
from tests.e2e.serve import free_port

pytestmark = pytest.mark.e2e


async def test_client_that_leaves_is_recorded_as_abandoned(
    service_factory: Callable[..., Any], database_url: str
) -> None:
    svc = await service_factory(gpu={"delay_s": 1.5})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(svc.settings, svc),
            port=port,
            log_config=None,
            lifespan="off",
            **uvicorn_options(svc.settings),
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            created = (
                await client.post(
                    "/api/memories?inline=false",
                    json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
                )
            ).json()
            memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]
            body = json.dumps({"parent_chunk_id": root, "action": "left"}).encode()
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"POST /api/memories/{memory_id}/chunks?inline=false HTTP/1.1\r\n"
                f"Host: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            await asyncio.sleep(0.5)  # accepted, generating
            writer.close()  # the viewer closes the tab
            # The generation goes on; once the chunk is ready, the row says abandoned.
            conn = await asyncpg.connect(database_url)
            try:
                row = None
                for _ in range(200):
                    row = await conn.fetchrow(
                        "SELECT outcome, served_at, abandoned_at FROM chunk_requests"
                        " WHERE action = 'left'"
                    )
                    if row is not None and row["abandoned_at"] is not None:
                        break
                    await asyncio.sleep(0.05)
                assert row is not None and row["abandoned_at"] is not None
                assert row["outcome"] == "miss"
                kept = await conn.fetchval(
                    "SELECT count(*) FROM chunk_requests WHERE abandoned_at IS NULL"
                )
                assert kept == 1  # the root's request, whose client stayed
            finally:
                await conn.close()
            # The same chunk asked again by a viewer who waits: a hit, not abandoned.
            again = await client.post(
                f"/api/memories/{memory_id}/chunks?inline=false",
                json={"parent_chunk_id": root, "action": "left"},
            )
            assert again.json()["chunk"]["outcome"] == "hit"
            rates = (await client.get("/api/analytics/hit-rates")).json()
            waits = (await client.get("/api/analytics/waits")).json()
        (total,) = rates["request_rates"]
        assert total["requests"] == 3 and total["abandoned"] == 1
        (answered,) = waits["rows"]
        assert answered["requests"] == 2  # the abandoned request's wait is left out
    finally:
        server.should_exit = True
        await serving
