"""Routes about the caller and sharing: who am I, share a memory read-only, signed event URLs.

- ``GET /api/me``: the caller (user id, operator or not), the auth mode and their limits.
- ``PUT /api/memories/{id}/share`` ``{"shared": true | false}``: the owner shares the memory
  read-only with every signed-in user (or stops); anyone else gets the unknown-id 404.
- ``GET /api/memories/{id}/events-url``: a signed, short-lived URL of the memory's SSE stream,
  for ``EventSource`` (which cannot send ``Authorization``).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from orchestrator import repo
from orchestrator.api import Svc
from orchestrator.errors import NotFound
from orchestrator.gate import User
from orchestrator.quotas import speculation_allowed

router = APIRouter(prefix="/api")


class ShareRequest(BaseModel):
    """PUT /api/memories/{id}/share body."""

    model_config = ConfigDict(extra="forbid")
    shared: bool


class ShareOut(BaseModel):
    """The memory's share state after the change."""

    memory_id: uuid.UUID
    shared: bool


class EventsUrl(BaseModel):
    """A signed URL of the memory's event stream and its lifetime in seconds."""

    url: str
    expires_in_s: int


@router.get("/me")
async def me(svc: Svc, caller: User) -> dict[str, object]:
    """The caller, the auth mode, and the caller's limits and usage today (UTC)."""
    gate = svc.gate
    await gate.usage.fresh(svc.db.pool)
    used = gate.usage.used(caller.user_id)
    cfg = gate.config
    limited = gate.auth.enabled and not caller.is_operator
    return {
        "user_id": str(caller.user_id) if caller.user_id is not None else None,
        "is_operator": caller.is_operator,
        "auth_mode": cfg.mode,
        "limits": {
            "requests_per_minute": cfg.requests_per_minute if limited else None,
            "gpu_seconds_per_day": cfg.gpu_seconds_per_day if limited else None,
            "gpu_seconds_used_today": round(used, 3),
            "speculation": not limited
            or speculation_allowed(used, cfg.gpu_seconds_per_day, cfg.speculation_reserve),
        },
    }


@router.put("/memories/{memory_id}/share", response_model=ShareOut)
async def share_memory(
    memory_id: uuid.UUID, body: ShareRequest, svc: Svc, caller: User
) -> ShareOut:
    """Share the memory read-only (``shared`` true) or stop sharing it. Owner only."""
    own = svc.gate.ownership
    async with svc.db.pool.acquire() as conn:
        await own.owned_memory(conn, caller, memory_id)
        row = await repo.set_memory_shared(conn, memory_id, body.shared)
    if row is None:
        raise NotFound(f"no memory {memory_id}", field="memory_id")
    own.remember_memory(memory_id, row["user_id"], row["shared"])
    return ShareOut(memory_id=memory_id, shared=row["shared"])


@router.get("/memories/{memory_id}/events-url", response_model=EventsUrl)
async def events_url(memory_id: uuid.UUID, svc: Svc, caller: User) -> EventsUrl:
    """A signed URL of ``/api/memories/{id}/events`` (unsigned when auth is off)."""
    async with svc.db.pool.acquire() as conn:
        await svc.gate.ownership.readable_memory(conn, caller, memory_id)
    signer = svc.gate.signer
    return EventsUrl(
        url=signer.sign(f"/api/memories/{memory_id}/events", caller), expires_in_s=signer.ttl_s
    )
