"""Analytics views checked against counts the test computes itself from a scripted workload.

Two A/B arms (none and uniform) share one memory; several sessions walk scripted paths through
the HTTP API. The test keeps its own ledger of every response (outcome, wait, arm) and of the raw
job rows, and the hit-rate, wait and waste views must agree with it exactly.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

ARMS = [
    {"name": "control", "policy": "none", "weight": 1.0},
    {"name": "spec", "policy": "uniform", "weight": 1.0, "params": {"k": 2, "actions": ["w", "d"]}},
]
PATHS = [("w", "w", "d"), ("w", "d", "d"), ("d", "w", "left"), ("w", "left", "w")]


async def test_views_match_independent_counts(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory(
        experiments={"name": "t1", "arms": ARMS},
        speculation={"speculative_share": 1.0, "min_probability": 0.1, "think_s": 0.5},
        gpu={"delay_s": 0.2, "max_containers": 3, "price_per_gpu_s": 0.001},
    )
    ledger: list[dict[str, Any]] = []
    async with client_for(svc) as client:
        created = (
            await client.post(
                "/api/memories?inline=false",
                json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
            )
        ).json()
        memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]
        sessions = []
        while {s["arm"] for s in sessions} != {"control", "spec"} or len(sessions) < 4:
            r = await client.post(f"/api/memories/{memory_id}/sessions", json={})
            assert r.status_code == 201, r.text
            sessions.append(r.json())
        for session, path in zip(sessions, PATHS * 3, strict=False):
            parent = root
            for action in path:
                await asyncio.sleep(0.6)  # think: lets the spec arm prepare children
                r = await client.post(
                    f"/api/memories/{memory_id}/chunks?inline=false",
                    json={
                        "parent_chunk_id": parent,
                        "action": action,
                        "session_id": session["session_id"],
                    },
                )
                assert r.status_code == 200, r.text
                chunk = r.json()["chunk"]
                ledger.append(
                    {
                        "policy": session["policy"],
                        "arm": session["arm"],
                        "outcome": chunk["outcome"],
                        "action": action,
                        "chunk_id": chunk["chunk_id"],
                    }
                )
                parent = chunk["chunk_id"]
        await asyncio.sleep(1.0)  # let speculative jobs settle
        await svc.scheduler.writer.flush()  # hit rows are written behind
        async with svc.db.pool.acquire() as conn:
            waits_db = await conn.fetch(
                "SELECT arm, wait_ms FROM chunk_requests WHERE wait_ms IS NOT NULL"
            )
            jobs = [dict(r) for r in await conn.fetch("SELECT * FROM gpu_jobs")]

        # -- request hit rates by arm --------------------------------------------------------
        body = (await client.get("/api/analytics/hit-rates?group_by=arm")).json()
        expected: dict[str, Counter[str]] = defaultdict(Counter)
        for row in ledger:
            expected[row["arm"]][row["outcome"]] += 1
        expected[created["arm"]]["miss"] += 1  # the root request of the memory's own session
        arms_seen = {}
        for row in body["request_rates"]:
            e = expected[row["arm"]]
            total = sum(e.values())
            assert row["requests"] == total
            assert (row["hits"], row["inflight"], row["misses"]) == (
                e["hit"],
                e["inflight"],
                e["miss"],
            )
            assert row["hit_rate"] == pytest.approx(e["hit"] / total)
            arms_seen[row["arm"]] = row
        assert set(arms_seen) == set(expected)

        # -- by action, outcomes add up to the ledger ------------------------------------------
        body = (await client.get("/api/analytics/hit-rates?group_by=action,policy")).json()
        by_action = Counter((r["action"], r["policy"]) for r in ledger)
        for row in body["request_rates"]:
            if row["action"] is None or row["policy"] is None:
                continue
            assert row["requests"] == by_action[(row["action"], row["policy"])]

        # -- branch hit rates from raw job rows ------------------------------------------------
        spec_ok = [
            j for j in jobs if j["initial_kind"] == "speculative" and j["status"] == "succeeded"
        ]
        body = (await client.get("/api/analytics/hit-rates?group_by=policy")).json()
        branch = {r["policy"]: r for r in body["branch_rates"]}
        if spec_ok:
            used = [j for j in spec_ok if j["first_used_at"] is not None]
            assert branch["uniform"]["speculated"] == len(spec_ok)
            assert branch["uniform"]["used"] == len(used)
            assert branch["uniform"]["speculated_gpu_s"] == pytest.approx(
                sum(j["gpu_seconds"] for j in spec_ok)
            )
        assert "none" not in branch  # the control arm never speculates
        requested = {r["chunk_id"] for r in ledger}
        for j in spec_ok:
            assert (j["first_used_at"] is not None) == (str(j["chunk_id"]) in requested)

        # -- wait percentiles equal numpy's linear interpolation ------------------------------
        body = (await client.get("/api/analytics/waits?group_by=arm")).json()
        for row in body["rows"]:
            w = np.array([r["wait_ms"] for r in waits_db if r["arm"] == row["arm"]])
            assert row["requests"] == len(w)
            assert row["p50_ms"] == pytest.approx(np.percentile(w, 50))
            assert row["p95_ms"] == pytest.approx(np.percentile(w, 95))
            assert row["p99_ms"] == pytest.approx(np.percentile(w, 99))
            assert row["mean_ms"] == pytest.approx(w.mean())

        # -- waste and cost from raw job rows -------------------------------------------------
        body = (await client.get("/api/analytics/waste")).json()
        (total,) = body["rows"]
        spec_all = [j for j in jobs if j["initial_kind"] == "speculative"]
        spec_s = sum(j["gpu_seconds"] or 0 for j in spec_all)
        unused_s = sum(j["gpu_seconds"] or 0 for j in spec_all if j["first_used_at"] is None)
        assert total["speculative_gpu_s"] == pytest.approx(spec_s)
        assert total["unused_gpu_s"] == pytest.approx(unused_s)
        if spec_s:
            assert total["waste_ratio"] == pytest.approx(unused_s / spec_s)
        gpu_s = sum(j["gpu_seconds"] or 0 for j in jobs)
        assert total["gpu_s"] == pytest.approx(gpu_s)
        assert total["usd"] == pytest.approx(gpu_s * 0.001)
        served = {r["chunk_id"] for r in ledger} | {root}
        assert total["served_chunks"] == len(served)
        assert total["gpu_s_per_served_chunk"] == pytest.approx(gpu_s / len(served))


async def test_bad_analytics_queries_get_clear_errors(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory()
    async with client_for(svc) as client:
        r = await client.get("/api/analytics/hit-rates?group_by=policy,colour")
        assert r.status_code == 422 and r.json()["field"] == "group_by"
        assert "colour" in r.json()["detail"]
        r = await client.get("/api/analytics/waits?since=yesterday")
        assert r.status_code == 422 and r.json()["field"] == "since"
        r = await client.get("/api/analytics/waste?group_by=depth")
        assert r.status_code == 422
        r = await client.get("/api/analytics/hit-rates?since=2020-01-01&until=2020-01-02")
        assert r.status_code == 200 and r.json()["request_rates"] == []
