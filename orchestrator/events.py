"""In-process publish/subscribe of per-memory events (chunk ready, speculation started/cancelled).

Subscribers get a bounded asyncio.Queue; a slow subscriber loses its oldest events rather than
holding the scheduler back. Used by the SSE endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.logs import BoundOnce

Event = dict[str, Any]

_log = BoundOnce("orchestrator.events")

LOGGED = frozenset({"chunk_served", "chunk_ready", "speculation_started", "speculation_cancelled"})
"""Event types also written to the service log at info (hit / miss / in-flight is the
``outcome`` of ``chunk_served``), so the log tells what speculation did without the SSE stream."""


class EventBus:
    """Fan-out of events keyed by memory id. ``maxsize`` bounds each subscriber's queue."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)

    def publish(self, memory_id: str, event_type: str, **data: Any) -> None:
        """Send ``{"type", "memory_id", "at" (unix seconds), **data}`` to subscribers.

        Types in ``LOGGED`` are also logged at info, as event ``event_type`` with ``data``.
        """
        if event_type in LOGGED:
            _log.get().info(event_type, memory_id=memory_id, **data)
        subs = self._subs.get(memory_id)
        if not subs:  # the usual case on the hit path: nobody is watching this memory
            return
        event: Event = {"type": event_type, "memory_id": memory_id, "at": time.time(), **data}
        for queue in list(subs):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, memory_id: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue receiving the memory's events while the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self.maxsize)
        self._subs[memory_id].add(queue)
        try:
            yield queue
        finally:
            self._subs[memory_id].discard(queue)
            if not self._subs[memory_id]:
                del self._subs[memory_id]
