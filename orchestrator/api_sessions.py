"""``GET /api/sessions/{id}``: one viewer's walk so far, as the player shows it.

Hit rate is over the requests after the root chunk (the root cannot have been speculated, so
counting it would make every walk look worse by one miss); GPU time and USD are every job
attempt made for the session (``gpu_jobs.session_id``): its demand chunks and the speculation
its policy started, cancelled work included. USD is GPU-seconds x the configured price.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from orchestrator.errors import NotFound
from orchestrator.gate import User
from orchestrator.queries import query
from orchestrator.service import Service

router = APIRouter(prefix="/api")


class SessionStats(BaseModel):
    """A session's walk: outcomes of its steps, and what it has cost."""

    session_id: uuid.UUID
    memory_id: uuid.UUID
    requests: int = Field(description="chunk requests after the root chunk")
    hits: int
    inflight: int
    misses: int
    hit_rate: float | None = Field(description="hits / requests (0..1); None before a step")
    mean_wait_ms: float | None = Field(description="mean wait of the steps, milliseconds")
    jobs: int = Field(description="GPU job attempts made for the session")
    speculative_jobs: int
    gpu_seconds: float = Field(description="GPU-seconds of those attempts")
    usd: float = Field(description="their cost in USD")


async def _service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


@router.get("/sessions/{session_id}", response_model=SessionStats)
async def get_session_stats(
    session_id: uuid.UUID, svc: Annotated[Service, Depends(_service)], caller: User
) -> SessionStats:
    """The session's steps by outcome (hit rate after the root chunk) and its GPU cost.

    Only the session's owner (or an operator) gets it; anyone else gets the unknown-id 404.
    """
    await svc.gate.ownership.own_session(svc.db.pool, caller, session_id)
    await svc.scheduler.writer.flush()  # hits are written behind: count every one so far
    async with svc.db.pool.acquire() as conn:
        row = await conn.fetchrow(query("session_stats"), session_id)
    if row is None:
        raise NotFound(f"no session {session_id}", field="session_id")
    requests = int(row["requests"])
    return SessionStats(
        session_id=row["session_id"],
        memory_id=row["memory_id"],
        requests=requests,
        hits=row["hits"],
        inflight=row["inflight"],
        misses=row["misses"],
        hit_rate=row["hits"] / requests if requests else None,
        mean_wait_ms=row["mean_wait_ms"],
        jobs=row["jobs"],
        speculative_jobs=row["speculative_jobs"],
        gpu_seconds=round(row["gpu_seconds"], 3),
        usd=round(row["usd"], 6),
    )
