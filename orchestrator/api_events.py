"""Server-sent events: what is being prepared for a memory, live (sse-starlette).

``GET /api/memories/{memory_id}/events`` streams one SSE event per scheduler event, named by its
type, with a JSON ``data`` payload:

- ``snapshot`` (first, once): ``{"chunks": {chunk_id: "ready" | "running" | "failed"}}``;
- ``speculation_started``: ``{chunk_id, pose, action, probability, depth}``;
- ``speculation_cancelled``: ``{chunk_id, reason}`` (abandoned | preempted | idle | budget);
- ``chunk_ready``: ``{chunk_id, kind, gpu_seconds}``;
- ``chunk_served``: ``{chunk_id, outcome, wait_ms}``.

Every payload also carries ``type``, ``memory_id`` and ``at`` (unix seconds). A comment ping
every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from orchestrator import repo
from orchestrator.api import Svc
from orchestrator.errors import NotFound
from orchestrator.gate import MediaCaller

router = APIRouter(prefix="/api")


@router.get("/memories/{memory_id}/events", response_class=EventSourceResponse)
async def memory_events(
    memory_id: uuid.UUID, request: Request, svc: Svc, caller: MediaCaller
) -> EventSourceResponse:
    """Stream the memory's scheduler events as SSE (see the module docstring for the types).

    EventSource cannot send headers: with auth on, open the signed URL from
    ``GET /api/memories/{id}/events-url`` (or send the header from a fetch-based client).
    """
    async with svc.db.pool.acquire() as conn:
        if caller is not None:
            await svc.gate.ownership.readable_memory(conn, caller, memory_id)
        if await repo.get_memory(conn, memory_id) is None:
            raise NotFound(f"no memory {memory_id}", field="memory_id")

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with svc.events.subscribe(str(memory_id)) as queue:
            snapshot = {
                "type": "snapshot",
                "memory_id": str(memory_id),
                "chunks": await svc.scheduler.tree_states(memory_id),
            }
            yield ServerSentEvent(data=json.dumps(snapshot), event="snapshot")
            while not await request.is_disconnected():
                event = await queue.get()
                yield ServerSentEvent(data=json.dumps(event), event=str(event["type"]))

    return EventSourceResponse(stream(), ping=15)
