"""GET /api/sessions/{id}: a walk's hit rate after the root chunk, and its GPU cost."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e


async def test_session_stats_count_steps_not_the_root(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory(
        speculation={"policy": "markov", "think_s": 0.2}, gpu={"price_per_gpu_s": 0.001}
    )
    async with client_for(svc) as client:
        r = await client.post(
            "/api/memories?inline=false",
            json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        )
        created = r.json()
        session = created["session_id"]
        fresh = (await client.get(f"/api/sessions/{session}")).json()
        # The root chunk is a miss that no policy could have avoided: it is not counted.
        assert fresh["requests"] == 0 and fresh["hit_rate"] is None
        assert fresh["gpu_seconds"] > 0 and fresh["jobs"] >= 1
        parent, outcomes = created["chunk"]["chunk_id"], []
        for _ in range(3):
            await asyncio.sleep(1.5)
            r = await client.post(
                f"/api/memories/{created['memory_id']}/chunks?inline=false",
                json={"parent_chunk_id": parent, "action": "w", "session_id": session},
            )
            parent = r.json()["chunk"]["chunk_id"]
            outcomes.append(r.json()["chunk"]["outcome"])
        stats = (await client.get(f"/api/sessions/{session}")).json()
        assert stats["requests"] == 3
        assert stats["hits"] == outcomes.count("hit")
        assert stats["misses"] == outcomes.count("miss")
        assert stats["hit_rate"] == pytest.approx(outcomes.count("hit") / 3)
        assert stats["gpu_seconds"] > fresh["gpu_seconds"]
        assert stats["usd"] == pytest.approx(stats["gpu_seconds"] * 0.001, rel=0.01)
        missing = uuid.uuid4()
        r = await client.get(f"/api/sessions/{missing}")
        assert r.status_code == 404 and r.json()["field"] == "session_id"
        r = await client.get("/api/sessions/nope")
        assert r.status_code == 422 and r.json()["field"] == "session_id"
