"""Between the tables and the live state: load a memory's tree, sessions, and recovery work.

The live state takes plain values with string ids (``orchestrator.live``); the tables hold
UUIDs and statuses. This module reads the rows and turns them into those values, so the
scheduler shell never carries a database record into the live state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orchestrator import repo
from orchestrator.db import Database
from orchestrator.live import KnownNode, LiveState, Producer
from orchestrator.live.tree import LiveNodeState
from orchestrator.queries import query

_STATES: dict[str, LiveNodeState] = {
    "ready": "ready",
    "pending": "pending",
    "failed": "failed",
    "cancelled": "failed",
}


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A sessions row as the shell needs it: memory, cursor (None before the root), arm."""

    session_id: uuid.UUID
    memory_id: uuid.UUID
    cursor: uuid.UUID | None
    arm: str | None


@dataclass(frozen=True, slots=True)
class PendingChunk:
    """A chunk a previous process accepted and did not finish, with its first requester."""

    chunk_id: uuid.UUID
    memory_id: uuid.UUID
    session_id: uuid.UUID | None
    call_id: str | None = None  # the remote call an interrupted demand attempt left running


async def load_memory(db: Database, live: LiveState, memory_id: uuid.UUID) -> bool:
    """Load a memory's known tree into ``live`` (one query for the memory, one for its chunks).

    Returns False when there is no such memory. Raises asyncpg / OSError errors.
    """
    mid = str(memory_id)
    if live.has_memory(mid):
        return True
    async with db.pool.acquire() as conn:
        if await repo.get_memory(conn, memory_id) is None:
            return False
        rows = await conn.fetch(query("chunks_of_memory_live"), memory_id)
    nodes: list[tuple[KnownNode, Producer | None]] = []
    for r in rows:  # by chunk_index: parents before children
        state = _STATES[r["status"]]
        node = KnownNode(
            str(r["id"]), mid, str(r["parent_chunk_id"]) if r["parent_chunk_id"] else None,
            r["pose"], r["action"], state, r["chunk_index"], 0.0 if state == "ready" else None,
        )  # fmt: skip
        made = None
        if r["job_id"] is not None:
            spec = r["initial_kind"] == "speculative"
            made = Producer(str(r["job_id"]), r["initial_kind"], r["depth"] if spec else None,
                            r["probability"] if spec else None, bool(r["used"]))  # fmt: skip
        nodes.append((node, made))
    live.load_memory(mid, nodes)
    return True


async def stored_session(db: Database, session_id: uuid.UUID) -> StoredSession | None:
    """The session's row, or None."""
    async with db.pool.acquire() as conn:
        row = await repo.get_session(conn, session_id)
    if row is None:
        return None
    return StoredSession(row["id"], row["memory_id"], row["cursor_chunk_id"], row["arm"])


async def latest_session(db: Database, memory_id: uuid.UUID) -> uuid.UUID | None:
    """The memory's most recent session (the seed's clients send no session id)."""
    async with db.pool.acquire() as conn:
        row = await repo.latest_session(conn, memory_id)
    return row["id"] if row is not None else None


async def interrupted_work(db: Database) -> tuple[int, list[PendingChunk]]:
    """Start-up recovery: mark every open attempt interrupted (their speculative chunks
    cancelled) and return (how many, the pending chunks to generate again, oldest first)."""
    async with db.pool.acquire() as conn, conn.transaction():
        interrupted = await repo.interrupt_open_jobs(conn, "orchestrator restarted")
        for r in interrupted:
            if r["kind"] == "speculative":
                await repo.set_chunk_status(conn, r["chunk_id"], "cancelled")
        pending = await repo.pending_chunks(conn)
    calls = {r["chunk_id"]: r["external_id"] for r in interrupted
             if r["kind"] == "demand" and r["external_id"]}  # fmt: skip
    return len(interrupted), [
        PendingChunk(r["id"], r["memory_id"], r["session_id"], calls.get(r["id"])) for r in pending
    ]
