"""Writes behind the request path: cache hits answered from memory are recorded in batches.

A hit is answered from the live state; its ``chunk_requests`` row, the session's cursor move and
the producing job's ``first_used_at`` are queued here and written in one transaction per flush,
one ``executemany`` per statement, at most ``interval_s`` (100 ms) apart, and on shutdown.
Misses and in-flight hits queue their rows too and then ``await flush()``, so their writes are
durable before the response depends on them and every session's cursor moves reach the database
in request order.

Durability rule (README, "Speculation"): a ``kill -9`` may lose at most the last unflushed batch
of hit rows (analytics rows, cursor moves and used-stamps of hits); never a chunk, a job, or a
miss's request. A flush that fails (database down) keeps its batch and is retried with back-off;
past ``max_pending`` queued rows the oldest hit rows are dropped (and counted) rather than
growing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from orchestrator.db import Database
from orchestrator.queries import query

log = structlog.get_logger(__name__)

# Errors worth retrying the whole batch for: the server went away or is not accepting yet.
_TRANSIENT = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


@dataclass(frozen=True, slots=True)
class _Op:
    statement: str  # a query name in orchestrator/sql
    args: tuple[Any, ...]
    hit: bool  # droppable under pressure


# The order a batch's statements are written in: a request row before its answer; the other
# statements are independent of each other (their rows exist before they are queued).
_ORDER = {
    name: rank
    for rank, name in enumerate(("request_insert", "request_insert_served", "replica_hit_insert",
                                 "request_served", "session_move", "job_mark_used"))
}  # fmt: skip


def _by_statement(batch: list[_Op]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The batch as one argument list per statement, in ``_ORDER`` (unknown names last, in
    order of first appearance), each list in queue order.

    One ``executemany`` per statement, not per run of equal statements: hits queue a request
    row and a cursor move each, so runs were one row long and a flush of N hits made 2N round
    trips (the queue fell behind under load). Within a statement the queue's order is kept,
    so a session's cursor moves and journey still follow its requests.
    """
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for op in batch:
        groups.setdefault(op.statement, []).append(op.args)
    names = sorted(groups, key=lambda n: _ORDER.get(n, len(_ORDER)))  # stable: first seen
    return [(n, groups[n]) for n in names]


class WriteBehind:
    """A FIFO of writes flushed in batches. ``start()``, queue with the methods, ``close()``.

    Args:
        db: the database.
        interval_s: longest time a queued write waits for its flush (seconds).
        max_pending: queued writes above which the oldest hit writes are dropped.
    """

    def __init__(self, db: Database, interval_s: float = 0.1, max_pending: int = 100_000) -> None:
        self.db, self.interval_s, self.max_pending = db, interval_s, max_pending
        self._queue: deque[_Op] = deque()
        self._written = 0  # ops written so far (FIFO position)
        self._queued = 0  # ops ever queued
        self._lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.flushes = 0

    def start(self) -> None:
        """Start the periodic flusher."""
        self._task = asyncio.create_task(self._loop(), name="rewind-write-behind")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop the flusher and write what is queued (bounded by ``timeout_s`` seconds)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await asyncio.wait_for(self._flush_once(), timeout_s)
        except Exception as exc:
            log.error("write_behind_lost", pending=len(self._queue), error=str(exc))

    # ---- queueing ----------------------------------------------------------------------------

    def _put(self, statement: str, args: tuple[Any, ...], hit: bool = False) -> None:
        self._queue.append(_Op(statement, args, hit))
        self._queued += 1
        if len(self._queue) > self.max_pending and not self._lock.locked():
            self._drop_oldest_hit()  # never while a flush holds a copy of the queue

    def _drop_oldest_hit(self) -> None:
        for i, op in enumerate(self._queue):
            if op.hit:
                del self._queue[i]
                self._written += 1  # it will never be written: flush() must not wait for it
                self.dropped += 1
                return

    def hit(
        self, request_id: uuid.UUID, *, session_id: uuid.UUID | None, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, chunk_id: uuid.UUID, job_id: uuid.UUID | None, pose: str,
        action: str | None, policy: str | None, arm: str | None, depth: int | None,
        probability: float | None, at: datetime,
    ) -> None:  # fmt: skip
        """Queue a hit's request row (wait 0, requested and served ``at``)."""
        self._put(
            "request_insert_served",
            (request_id, session_id, memory_id, parent_id, chunk_id, job_id, pose, action, "hit",
             policy, arm, depth, probability, at),
            hit=True,
        )  # fmt: skip

    def request(
        self, request_id: uuid.UUID, *, session_id: uuid.UUID | None, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, chunk_id: uuid.UUID, job_id: uuid.UUID | None, pose: str,
        action: str | None, outcome: str, policy: str | None, arm: str | None,
        depth: int | None, probability: float | None,
    ) -> None:  # fmt: skip
        """Queue a waiting request's row (answered later by ``served``)."""
        self._put(
            "request_insert",
            (request_id, session_id, memory_id, parent_id, chunk_id, job_id, pose, action,
             outcome, policy, arm, depth, probability),
        )  # fmt: skip

    def served(self, request_id: uuid.UUID, wait_ms: float | None, error: str | None) -> None:
        """Queue the answer of a waiting request (wait in ms, or the error)."""
        self._put("request_served", (request_id, wait_ms, error))

    def move(self, session_id: uuid.UUID, chunk_id: uuid.UUID, hit: bool) -> None:
        """Queue a cursor move (journeys keep request order: the queue is FIFO)."""
        self._put("session_move", (session_id, chunk_id), hit=hit)

    def replica_hit(
        self, request_id: uuid.UUID, *, memory_id: uuid.UUID, parent_id: uuid.UUID | None,
        pose: str, action: str | None, session_id: uuid.UUID | None, record_history: bool,
    ) -> None:  # fmt: skip
        """Queue the note an API replica leaves the scheduler about a hit it answered (its
        cursor move and action reach the live state and the policies; issue 16)."""
        self._put("replica_hit_insert",
                  (request_id, memory_id, parent_id, pose, action, session_id, record_history),
                  hit=True)  # fmt: skip

    def used(self, job_id: uuid.UUID, hit: bool) -> None:
        """Queue the first-use stamp of a speculative job."""
        self._put("job_mark_used", (job_id,), hit=hit)

    # ---- flushing ----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Writes queued and not yet written."""
        return len(self._queue)

    async def flush(self) -> None:
        """Return once everything queued before this call is written.

        Raises:
            asyncpg / OSError errors: the database refused the batch (it stays queued).
        """
        target = self._queued
        while self._written < target:
            await self._flush_once()

    async def _flush_once(self) -> None:
        async with self._lock:
            if not self._queue:
                return
            batch = list(self._queue)
            try:
                await self._write(batch)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, _TRANSIENT):
                    raise
                # A row the database refuses (say its chunk was deleted) must not block every
                # later one: write one by one and drop the refused ones.
                await self._write_each(batch)
            for _ in batch:
                self._queue.popleft()
            self._written += len(batch)
            self.flushes += 1

    async def _write(self, batch: list[_Op]) -> None:
        async with self.db.pool.acquire() as conn, conn.transaction():
            for statement, args in _by_statement(batch):
                await conn.executemany(query(statement), args)

    async def _write_each(self, batch: list[_Op]) -> None:
        async with self.db.pool.acquire() as conn:
            for op in batch:
                try:
                    await conn.execute(query(op.statement), *op.args)
                except asyncpg.PostgresError as exc:
                    if isinstance(exc, _TRANSIENT):
                        raise
                    self.dropped += 1
                    log.error("write_behind_refused", statement=op.statement, error=str(exc))

    async def _loop(self) -> None:
        delay = self.interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                await self._flush_once()
                delay = self.interval_s
            except Exception as exc:
                delay = min(5.0, delay * 2)
                log.warning("write_behind_retry", pending=len(self._queue), error=str(exc),
                            retry_in_s=delay)  # fmt: skip
