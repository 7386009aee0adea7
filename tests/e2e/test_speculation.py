"""Speculation end to end through HTTP with the real local GPU pool.

The viewer thinks longer than a chunk takes to generate, so a policy that predicts the viewer's
next action has the chunk ready before it is asked for: with markov every request is a hit;
with none every request is a miss (the seed's on-demand baseline).
"""

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

THINK_S = 3.0  # the viewer's thinking time; a small test chunk takes well under a second
WALK = ("w", "w", "w", "w")


async def _walk(service_factory: Callable[..., Any], policy: str) -> list[dict[str, Any]]:
    svc = await service_factory(
        speculation={"policy": policy, "think_s": THINK_S, "min_probability": 0.2},
        gpu={"delay_s": 0.2, "max_containers": 2},
    )
    async with client_for(svc) as client:
        r = await client.post(
            "/api/memories?inline=false",
            json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        )
        assert r.status_code == 200, r.text
        memory_id, parent = r.json()["memory_id"], r.json()["chunk"]
        session_id = r.json()["session_id"]
        chunks = []
        for action in WALK:
            await asyncio.sleep(THINK_S)
            r = await client.post(
                f"/api/memories/{memory_id}/chunks?inline=false",
                json={
                    "parent_chunk_id": parent["chunk_id"],
                    "action": action,
                    "session_id": session_id,
                },
            )
            assert r.status_code == 200, r.text
            parent = r.json()["chunk"]
            chunks.append(parent)
        await svc.scheduler.writer.flush()  # hit rows are written behind
        async with svc.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT outcome, policy, speculated_depth FROM chunk_requests "
                "WHERE parent_chunk_id IS NOT NULL ORDER BY requested_at"
            )
        assert [r["outcome"] for r in rows] == [c["outcome"] for c in chunks]
        assert all(r["policy"] == policy for r in rows)
    return chunks


async def test_markov_turns_later_requests_into_hits(
    service_factory: Callable[..., Any],
) -> None:
    chunks = await _walk(service_factory, "markov")
    outcomes = [c["outcome"] for c in chunks]
    # Even before anything is learned, markov's base prior says viewers mostly walk forward
    # (policies.smoothing.BASE_SINGLE): the first w is speculated too; the rest are learned.
    assert outcomes == ["hit"] * len(WALK), outcomes


async def test_policy_none_misses_every_time(service_factory: Callable[..., Any]) -> None:
    chunks = await _walk(service_factory, "none")
    assert [c["outcome"] for c in chunks] == ["miss"] * len(WALK)
    assert all(c["wait_ms"] > 0 for c in chunks)


async def test_leaving_a_branch_cancels_its_speculation(
    service_factory: Callable[..., Any],
) -> None:
    svc = await service_factory(
        speculation={
            "policy": "uniform",
            "policy_params": {"k": 2},
            "speculative_share": 1.0,
            "min_probability": 0.1,
        },
        gpu={"delay_s": 30.0, "max_containers": 3},
    )
    async with client_for(svc) as client:
        r = await client.post(
            "/api/memories?inline=false",
            json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        # uniform k=2 speculates w and left below the root while the viewer watches it.
        for _ in range(100):
            if svc.scheduler.busy_slots()["speculative"] == 2:
                break
            await asyncio.sleep(0.1)
        assert svc.scheduler.busy_slots()["speculative"] == 2
        # The viewer goes 'd' instead; it needs a slot, and w / left are now unreachable.
        pick = asyncio.create_task(
            client.post(
                f"/api/memories/{body['memory_id']}/chunks?inline=false",
                json={"parent_chunk_id": body["chunk"]["chunk_id"], "action": "d"},
            )
        )
        for _ in range(100):
            await svc.scheduler.writer.flush()  # hit rows are written behind
            async with svc.db.pool.acquire() as conn:
                rows = await conn.fetch(
                    "SELECT c.action, j.status, j.cancel_reason FROM gpu_jobs j "
                    "JOIN chunks c ON c.id = j.chunk_id WHERE j.initial_kind = 'speculative' "
                    "AND c.parent_chunk_id = $1 AND c.action IN ('w', 'left')",
                    uuid.UUID(body["chunk"]["chunk_id"]),
                )
            if len(rows) == 2 and all(r["status"] == "cancelled" for r in rows):
                break
            await asyncio.sleep(0.1)
        assert sorted(r["action"] for r in rows) == ["left", "w"]
        assert {r["status"] for r in rows} == {"cancelled"}
        assert {r["cancel_reason"] for r in rows} <= {"abandoned", "preempted"}
        pick.cancel()
