"""``GET /api/analytics/timeseries``: hit rate, waits and GPU time per time bucket.

What the dashboard plots over time, from the same tables as the analytics views:

- per bucket of ``bucket_s`` seconds (aligned to UTC, ``date_bin``): chunk requests after the
  root chunk by outcome, their hit rate, p50 and p95 wait (ms, ``percentile_cont``), and
  GPU-seconds by initial job kind (demand, speculative), each attempt in the bucket it finished;
- ``totals``: the same request figures over the whole window (the dashboard's headline), plus
  ``roots``, the root-chunk requests left out (a root cannot be speculated, so counting its miss
  would lower every policy's hit rate alike).

Without ``bucket_s`` the width is the smallest of ``BUCKETS_S`` giving at most ``MAX_BUCKETS``
buckets over the window (from ``since``, or the first request, to ``until``, or now).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from orchestrator import analytics
from orchestrator.api import Svc
from orchestrator.errors import InvalidInput
from orchestrator.gate import require_operator
from orchestrator.queries import Conn, query

# Operators only, as every analytics route (issue 14).
router = APIRouter(prefix="/api/analytics", dependencies=[Depends(require_operator)])

BUCKETS_S = (10, 30, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
"""Bucket widths chosen automatically, seconds."""
MAX_BUCKETS = 60
MIN_BUCKET_S, MAX_BUCKET_S = 1, 31 * 86400


def choose_bucket(span_s: float) -> int:
    """The smallest width of ``BUCKETS_S`` that cuts ``span_s`` seconds into <= MAX_BUCKETS."""
    for width in BUCKETS_S:
        if span_s / width <= MAX_BUCKETS:
            return width
    return BUCKETS_S[-1]


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def timeseries(
    conn: Conn, since: dt.datetime | None, until: dt.datetime | None, bucket_s: int | None
) -> dict[str, Any]:
    """The time series and totals (see the module docstring), JSON-ready."""
    totals = await conn.fetchrow(query("timeseries_totals"), since, until)
    assert totals is not None  # an aggregate always returns one row
    if bucket_s is None:
        start = since or totals["first_at"]
        end = until or dt.datetime.now(dt.UTC)
        span = (end - start).total_seconds() if start is not None else 0.0
        bucket_s = choose_bucket(max(span, 0.0))
    req_rows = await conn.fetch(query("timeseries_requests"), float(bucket_s), since, until)
    gpu_rows = await conn.fetch(query("timeseries_gpu"), float(bucket_s), since, until)
    buckets: dict[dt.datetime, dict[str, Any]] = {}

    def bucket(at: dt.datetime) -> dict[str, Any]:
        return buckets.setdefault(at, {
            "start": at.isoformat(), "requests": 0, "hits": 0, "inflight": 0, "misses": 0,
            "hit_rate": None, "p50_ms": None, "p95_ms": None,
            "gpu_s": {"demand": 0.0, "speculative": 0.0},
        })  # fmt: skip

    for r in req_rows:
        b = bucket(r["bucket"])
        b.update(requests=r["requests"], hits=r["hits"], inflight=r["inflight"],
                 misses=r["misses"], hit_rate=_rate(r["hits"], r["requests"]),
                 p50_ms=r["p50_ms"], p95_ms=r["p95_ms"])  # fmt: skip
    for r in gpu_rows:
        bucket(r["bucket"])["gpu_s"][r["kind"]] = round(r["gpu_s"], 3)
    n = int(totals["requests"])
    return {
        "bucket_s": bucket_s,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "totals": {
            "requests": n,
            "hits": totals["hits"],
            "inflight": totals["inflight"],
            "misses": totals["misses"],
            "hit_rate": _rate(totals["hits"], n),
            "inflight_rate": _rate(totals["inflight"], n),
            "miss_rate": _rate(totals["misses"], n),
            "p50_ms": totals["p50_ms"],
            "p95_ms": totals["p95_ms"],
            "roots": totals["roots"],
        },
        "buckets": [buckets[k] for k in sorted(buckets)],
    }


@router.get("/timeseries")
async def get_timeseries(
    svc: Svc,
    since: Annotated[str | None, Query(description="ISO-8601 start (inclusive)")] = None,
    until: Annotated[str | None, Query(description="ISO-8601 end (exclusive)")] = None,
    bucket_s: Annotated[
        int | None, Query(description="bucket width in seconds (default: chosen for the window)")
    ] = None,
) -> dict[str, Any]:
    """Hit rate, p50/p95 wait and GPU-seconds by kind per time bucket; headline totals."""
    t0, t1 = analytics.parse_time(since, "since"), analytics.parse_time(until, "until")
    if bucket_s is not None and not MIN_BUCKET_S <= bucket_s <= MAX_BUCKET_S:
        raise InvalidInput(
            "invalid_bucket",
            f"bucket_s must be within {MIN_BUCKET_S}..{MAX_BUCKET_S} seconds (got {bucket_s})",
            field="bucket_s",
        )
    if t0 is not None and t1 is not None and t1 <= t0:
        raise InvalidInput("invalid_time", "until must be after since", field="until")
    await svc.scheduler.writer.flush()  # hits are written behind: count every one so far
    async with svc.db.pool.acquire() as conn:
        return await timeseries(conn, t0, t1, bucket_s)
