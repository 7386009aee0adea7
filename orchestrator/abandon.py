"""Abandoned requests: the client went away before its chunk arrived (issue 12).

A chunk request may wait minutes for a GPU; a viewer who closes the tab meanwhile was counted as
served. Now the API wraps each chunk request in ``client_watch(request)``: a task waits for the
ASGI ``http.disconnect`` message (the body has already been read, so the next message can only
be that) and stamps ``ClientWatch.gone_at``. The generation itself goes on (it is demand work
another viewer may hit); only the analytics change.

The state is a value, ``ClientWatch``, passed along with the request, because the scheduler may
write request rows later, in batches. Two ways for the writer to use it:

- ``watch.note_request(request_id)`` when it creates a ``chunk_requests`` row in the request's
  own task; on exit ``client_watch`` then marks the noted rows (``sql/request_abandoned.sql``).
  ``repo.insert_request`` does this for the rows it writes (through ``current_watch()``).
- a batch writer that runs after the answer reads ``watch.gone_at`` and writes it into
  ``chunk_requests.abandoned_at`` itself (migration 005).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog
from starlette.requests import Request

from orchestrator.db import Database
from orchestrator.queries import query

log = structlog.get_logger(__name__)


@dataclass
class ClientWatch:
    """Whether the client of one HTTP request is still there.

    ``gone_at``: UTC time the disconnect was seen, None while connected. ``request_ids``: the
    ``chunk_requests`` rows written for this HTTP request.
    """

    gone_at: dt.datetime | None = None
    request_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def gone(self) -> bool:
        """True once the client disconnected."""
        return self.gone_at is not None

    def note_request(self, request_id: uuid.UUID) -> None:
        """Remember a chunk_requests row written for this HTTP request."""
        self.request_ids.append(request_id)


_CURRENT: ContextVar[ClientWatch | None] = ContextVar("rewind_client_watch", default=None)


def current_watch() -> ClientWatch | None:
    """The ClientWatch of the HTTP request this task serves, if any."""
    return _CURRENT.get()


async def _wait_for_disconnect(request: Request, watch: ClientWatch) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            watch.gone_at = dt.datetime.now(dt.UTC)
            log.info("client_gone")
            return


async def mark_abandoned(db: Database, watch: ClientWatch) -> None:
    """Write ``abandoned_at`` on the noted rows (a database error is logged, not raised)."""
    if not watch.gone or not watch.request_ids:
        return
    try:
        async with db.pool.acquire() as conn:
            await conn.execute(query("request_abandoned"), watch.request_ids, watch.gone_at)
    except Exception as exc:  # analytics must never turn an answer into an error
        log.warning("abandoned_not_recorded", error=type(exc).__name__)


@contextlib.asynccontextmanager
async def client_watch(request: Request, db: Database) -> AsyncIterator[ClientWatch]:
    """Watch ``request``'s client for the block; mark its rows abandoned if it left."""
    watch = ClientWatch()
    token = _CURRENT.set(watch)
    watcher = asyncio.create_task(_wait_for_disconnect(request, watch))
    try:
        yield watch
    finally:
        _CURRENT.reset(token)
        if not watcher.done():
            # Give a disconnect that raced with the answer its chance to be read.
            await asyncio.sleep(0)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        await mark_abandoned(db, watch)


async def mark_if_gone(request: Request, db: Database, request_id: uuid.UUID) -> bool:
    """After a request that waited: if its client has gone meanwhile, mark its row abandoned
    (at the time this is noticed, the answer's). The cheap path for chunk requests: a hit,
    the common case, never waits, so no watcher task is spent on it. Returns True if gone."""
    if not await request.is_disconnected():
        return False
    watch = ClientWatch(gone_at=dt.datetime.now(dt.UTC), request_ids=[request_id])
    log.info("client_gone")
    await mark_abandoned(db, watch)
    return True
