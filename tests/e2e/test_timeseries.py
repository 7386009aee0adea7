"""GET /api/analytics/timeseries (the dashboard's charts over time and headline) and the Grafana
dashboard for /metrics, against a real service and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.api_timeseries import MAX_BUCKETS, choose_bucket
from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

GRAFANA = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "rewind.json"


async def _walk(client: httpx.AsyncClient, steps: int) -> None:
    r = await client.post(
        "/api/memories?inline=false",
        json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
    )
    created = r.json()
    parent = created["chunk"]["chunk_id"]
    for _ in range(steps):
        await asyncio.sleep(0.6)
        r = await client.post(
            f"/api/memories/{created['memory_id']}/chunks?inline=false",
            json={"parent_chunk_id": parent, "action": "w", "session_id": created["session_id"]},
        )
        parent = r.json()["chunk"]["chunk_id"]


async def test_timeseries_buckets_and_headline(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory(speculation={"policy": "markov", "think_s": 0.2})
    async with client_for(svc) as client:
        before = dt.datetime.now(dt.UTC)
        await _walk(client, 3)
        body = (await client.get("/api/analytics/timeseries?bucket_s=10")).json()
        assert body["bucket_s"] == 10
        totals = body["totals"]
        # The headline counts the 3 steps; the root chunk is reported apart.
        assert totals["requests"] == 3 and totals["roots"] == 1
        assert totals["hits"] + totals["inflight"] + totals["misses"] == 3
        assert totals["hit_rate"] == pytest.approx(totals["hits"] / 3)
        buckets = body["buckets"]
        starts = [dt.datetime.fromisoformat(b["start"]) for b in buckets]
        assert starts == sorted(starts)
        now = dt.datetime.now(dt.UTC)
        assert all(before - dt.timedelta(seconds=10) <= s <= now for s in starts)
        assert all(s.timestamp() % 10 == 0 for s in starts)  # aligned buckets
        assert sum(b["requests"] for b in buckets) == 3
        gpu = sum(b["gpu_s"]["demand"] + b["gpu_s"]["speculative"] for b in buckets)
        async with svc.db.pool.acquire() as conn:
            billed = await conn.fetchval(
                "SELECT sum(gpu_seconds) FROM gpu_jobs WHERE finished_at IS NOT NULL"
            )
        assert gpu == pytest.approx(billed, abs=0.01)
        auto = (await client.get("/api/analytics/timeseries")).json()
        assert auto["bucket_s"] == 10  # a minute of data: the finest width
        for q, field in (("bucket_s=0", "bucket_s"), ("since=2026-02-02&until=2026-02-01", "until"),
                         ("since=yesterday", "since")):  # fmt: skip
            r = await client.get(f"/api/analytics/timeseries?{q}")
            assert r.status_code == 422 and r.json()["field"] == field, q


def test_bucket_width_keeps_the_chart_readable() -> None:
    assert choose_bucket(60) == 10
    assert choose_bucket(3600) == 60
    assert choose_bucket(7 * 86400) == 3 * 3600
    for span in (1, 59, 600, 86400, 30 * 86400):
        assert span / choose_bucket(span) <= MAX_BUCKETS


async def test_grafana_dashboard_queries_metrics_the_service_exports(
    service_factory: Callable[..., Any],
) -> None:
    dash = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(dash["panels"]) >= 6 and all(p["datasource"]["uid"] for p in dash["panels"])
    svc = await service_factory(speculation={"policy": "markov", "think_s": 0.2})
    async with client_for(svc) as client:
        await _walk(client, 2)
        text = (await client.get("/metrics")).text
    # Families by their TYPE lines (a labelled counter with no sample yet still counts).
    exported: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (rewind_[a-z_]+) (\w+)$", text, re.M):
        suffixes = {"histogram": ("_bucket", "_count", "_sum")}  # counters: TYPE has _total
        exported |= {name + s for s in suffixes.get(kind, ("",))}
    for expr in exprs:
        for name in re.findall(r"rewind_[a-z_]+", expr):
            assert name in exported, f"{name} (in {expr!r}) is not exported"
    # The wait histogram carries the policy label the p95-by-policy panel groups by.
    assert re.search(r'rewind_chunk_wait_seconds_bucket\{[^}]*policy="', text)
