"""Analyst and operator endpoints: analytics, Prometheus metrics, live configuration.

Every route here needs the operator role (``orchestrator.gate.require_operator``): a JWT whose
``role`` is ``service_role``, or ``[auth] operator_token``; with auth off, the local user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator import analytics
from orchestrator.api import Svc
from orchestrator.gate import require_operator
from orchestrator.queries import Conn
from orchestrator.service import Service

router = APIRouter(dependencies=[Depends(require_operator)])

GroupBy = Annotated[
    str | None,
    Query(description="comma-separated: policy, arm, day, depth, action (waste: policy, arm, day)"),
]
Since = Annotated[str | None, Query(description="ISO-8601 start (inclusive)")]
Until = Annotated[str | None, Query(description="ISO-8601 end (exclusive)")]


async def _analytics(
    svc: Service,
    run: Callable[[Conn, list[str], Any, Any], Awaitable[dict[str, Any]]],
    group_by: str | None,
    since: str | None,
    until: str | None,
    allowed: tuple[str, ...] = analytics.DIMENSIONS,
) -> dict[str, Any]:
    await svc.scheduler.writer.flush()  # hits are written behind: count every one so far
    dims = analytics.parse_group_by(group_by, allowed)
    t0, t1 = analytics.parse_time(since, "since"), analytics.parse_time(until, "until")
    async with svc.db.pool.acquire() as conn:
        return await run(conn, dims, t0, t1)


@router.get("/api/analytics/hit-rates")
async def hit_rates(
    svc: Svc, group_by: GroupBy = None, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """Request hit / in-flight / miss rates and branch hit rates (README "Analytics")."""
    return await _analytics(svc, analytics.hit_rates, group_by, since, until)


@router.get("/api/analytics/waits")
async def waits(
    svc: Svc, group_by: GroupBy = None, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """Wait mean and percentiles (p50/p95/p99, milliseconds)."""
    return await _analytics(svc, analytics.waits, group_by, since, until)


@router.get("/api/analytics/waste")
async def waste(
    svc: Svc, group_by: GroupBy = None, since: Since = None, until: Until = None
) -> dict[str, Any]:
    """Waste ratio, GPU-seconds and USD, in total and per served chunk."""
    return await _analytics(
        svc, analytics.waste, group_by, since, until, analytics.WASTE_DIMENSIONS
    )


@router.get("/metrics")
async def metrics(svc: Svc) -> Response:
    """Prometheus exposition (see ``orchestrator.metrics``)."""
    sched = svc.scheduler
    body = svc.metrics.render(svc.gpu_slots, sched.busy_slots(), sched.queued_demands())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/api/admin/config")
async def get_config(svc: Svc) -> dict[str, Any]:
    """The active configuration, and the arms sessions are assigned to."""
    config: dict[str, Any] = svc.settings.model_dump(mode="json")
    config["database"]["url"] = "(set)" if svc.settings.database.url else None  # no secrets
    config["active_arms"] = [
        {"name": a.name, "policy": a.policy, "weight": a.weight, "params": a.params}
        for a in svc.scheduler.policies.arms
    ]
    config["auth"]["gpu_usage"] = svc.gate.usage.limits()  # secrets above are masked
    return config


@router.post("/api/admin/config/reload")
async def reload_config(svc: Svc) -> dict[str, object]:
    """Re-read rewind.toml and apply policy/budget/arms live (422 with the errors if invalid)."""
    result = await svc.reload()
    config = result["config"]
    if isinstance(config, dict):
        config["database"]["url"] = "(set)" if svc.settings.database.url else None
    return result
