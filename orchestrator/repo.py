"""Typed access to the service's tables. Every statement lives in ``orchestrator/sql/*.sql``.

Rows are returned as asyncpg Records (mapping-like); ids go in and come out as ``uuid.UUID``.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from orchestrator.abandon import current_watch
from orchestrator.queries import Conn, query

Row = asyncpg.Record


async def insert_memory(
    conn: Conn,
    memory_id: uuid.UUID,
    prompt: str | None,
    image_path: str,
    width: int,
    height: int,
    user_id: uuid.UUID | None = None,
) -> None:
    """Insert a memories row owned by ``user_id`` (scene and audio filled in later)."""
    await conn.execute(
        query("memory_insert"), memory_id, prompt, image_path, width, height, user_id
    )


async def set_memory_scene(
    conn: Conn,
    memory_id: uuid.UUID,
    description: str,
    mood: str,
    anchor_points: list[dict[str, Any]],
    sound_keywords: list[str],
    source: str,
) -> None:
    """Store a scene analysis on its memory."""
    await conn.execute(
        query("memory_set_scene"),
        memory_id,
        description,
        mood,
        anchor_points,
        sound_keywords,
        source,
    )


async def set_memory_audio(conn: Conn, memory_id: uuid.UUID, path: str, content_type: str) -> None:
    """Record a memory's soundscape blob."""
    await conn.execute(query("memory_set_audio"), memory_id, path, content_type)


async def get_memory(conn: Conn, memory_id: uuid.UUID) -> Row | None:
    """The memories row, or None."""
    row: Row | None = await conn.fetchrow(query("memory_get"), memory_id)
    return row


async def claim_chunk(
    conn: Conn,
    *,
    chunk_id: uuid.UUID,
    memory_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    chunk_index: int,
    pose: str,
    action: str | None,
    profile_key: str,
    profile: dict[str, object],
) -> tuple[Row, bool]:
    """Claim a chunk key: (row, True) if this call created it, (existing row, False) otherwise."""
    row: Row | None = await conn.fetchrow(
        query("chunk_claim"),
        chunk_id,
        memory_id,
        parent_id,
        chunk_index,
        pose,
        action,
        profile_key,
        profile,
    )
    if row is not None:
        return row, True
    existing: Row | None = await conn.fetchrow(
        query("chunk_by_key"), memory_id, parent_id, pose, profile_key
    )
    if existing is None:  # deleted between the two statements: only with ON DELETE CASCADE
        raise RuntimeError("chunk key vanished while being claimed")
    return existing, False


async def reclaim_chunk(conn: Conn, chunk_id: uuid.UUID) -> Row | None:
    """Set a failed/cancelled chunk back to pending; None if it was not failed/cancelled."""
    row: Row | None = await conn.fetchrow(query("chunk_reclaim"), chunk_id)
    return row


async def get_chunk(conn: Conn, chunk_id: uuid.UUID) -> Row | None:
    """The chunks row, or None."""
    row: Row | None = await conn.fetchrow(query("chunk_get"), chunk_id)
    return row


async def chunks_of_memory(conn: Conn, memory_id: uuid.UUID) -> list[Row]:
    """Every chunk of a memory, by chunk_index."""
    rows: list[Row] = await conn.fetch(query("chunks_of_memory"), memory_id)
    return rows


async def mark_chunk_ready(
    conn: Conn, chunk_id: uuid.UUID, video_path: str, frame_path: str, video_bytes: int
) -> Row | None:
    """pending -> ready with its blob keys; None if it was not pending."""
    row: Row | None = await conn.fetchrow(
        query("chunk_ready"), chunk_id, video_path, frame_path, video_bytes
    )
    return row


async def set_chunk_status(conn: Conn, chunk_id: uuid.UUID, status: str) -> None:
    """pending -> failed | cancelled (a ready chunk is never downgraded)."""
    await conn.execute(query("chunk_set_status"), chunk_id, status)


async def insert_job(
    conn: Conn,
    *,
    job_id: uuid.UUID,
    chunk_id: uuid.UUID,
    memory_id: uuid.UUID,
    session_id: uuid.UUID | None,
    kind: str,
    backend: str,
    policy: str | None,
    probability: float | None,
    depth: int | None,
    arm: str | None,
) -> None:
    """Insert a queued gpu_jobs row (attempt number = previous attempts on the chunk + 1)."""
    await conn.execute(
        query("job_insert"),
        job_id,
        chunk_id,
        memory_id,
        session_id,
        kind,
        backend,
        policy,
        probability,
        depth,
        arm,
    )


async def start_job(conn: Conn, job_id: uuid.UUID) -> None:
    """queued -> running, stamping started_at."""
    await conn.execute(query("job_start"), job_id)


async def promote_job(conn: Conn, job_id: uuid.UUID) -> None:
    """speculative -> demand (an in-flight hit), stamping promoted_at."""
    await conn.execute(query("job_promote"), job_id)


async def job_succeeded(
    conn: Conn, job_id: uuid.UUID, gpu_seconds: float, cold_start: bool, usd_per_gpu_s: float
) -> None:
    """running -> succeeded with its GPU-seconds and cost (GPU-seconds x USD per GPU-second)."""
    await conn.execute(query("job_succeeded"), job_id, gpu_seconds, cold_start, usd_per_gpu_s)


async def job_ended(
    conn: Conn,
    job_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    cancel_reason: str | None = None,
    gpu_seconds: float | None = None,
    usd_per_gpu_s: float = 0.0,
) -> None:
    """queued/running -> failed | cancelled | interrupted, with GPU-seconds spent and cost."""
    await conn.execute(
        query("job_ended"), job_id, status, error, cancel_reason, gpu_seconds, usd_per_gpu_s
    )


async def open_jobs(conn: Conn) -> list[Row]:
    """Jobs left queued or running (joined with their chunk's key), oldest first."""
    rows: list[Row] = await conn.fetch(query("jobs_open"))
    return rows


async def latest_job_for_chunk(conn: Conn, chunk_id: uuid.UUID) -> Row | None:
    """The attempt that produced, or is producing, the chunk."""
    row: Row | None = await conn.fetchrow(query("job_latest_for_chunk"), chunk_id)
    return row


async def mark_job_used(conn: Conn, job_id: uuid.UUID) -> None:
    """Stamp first_used_at: a request used this job's chunk (so it is not waste)."""
    await conn.execute(query("job_mark_used"), job_id)


async def insert_session(
    conn: Conn,
    session_id: uuid.UUID,
    memory_id: uuid.UUID,
    cursor: uuid.UUID | None,
    policy: str,
    arm: str,
    user_id: uuid.UUID | None = None,
) -> Row:
    """Insert a session of ``user_id`` whose journey starts at ``cursor``."""
    path = [str(cursor)] if cursor else []
    row: Row | None = await conn.fetchrow(
        query("session_insert"), session_id, memory_id, cursor, path, policy, arm, user_id
    )
    if row is None:
        raise RuntimeError("INSERT ... RETURNING returned no row")
    return row


async def get_session(conn: Conn, session_id: uuid.UUID) -> Row | None:
    """The sessions row, or None."""
    row: Row | None = await conn.fetchrow(query("session_get"), session_id)
    return row


async def latest_session(conn: Conn, memory_id: uuid.UUID) -> Row | None:
    """The memory's most recent session (the seed's frontend sends no session id)."""
    row: Row | None = await conn.fetchrow(query("session_latest"), memory_id)
    return row


async def latest_session_of_user(
    conn: Conn, memory_id: uuid.UUID, user_id: uuid.UUID
) -> Row | None:
    """``user_id``'s most recent session on the memory, or None."""
    row: Row | None = await conn.fetchrow(query("session_latest_of_user"), memory_id, user_id)
    return row


async def set_memory_shared(conn: Conn, memory_id: uuid.UUID, shared: bool) -> Row | None:
    """Set the memory's read-only share flag; its (user_id, shared) row, None if unknown."""
    row: Row | None = await conn.fetchrow(query("memory_set_shared"), memory_id, shared)
    return row


async def move_session(conn: Conn, session_id: uuid.UUID, chunk_id: uuid.UUID) -> None:
    """Move the session's cursor to ``chunk_id`` and append it to its journey."""
    await conn.execute(query("session_move"), session_id, chunk_id)


async def insert_request(
    conn: Conn,
    *,
    request_id: uuid.UUID,
    session_id: uuid.UUID | None,
    memory_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    chunk_id: uuid.UUID,
    job_id: uuid.UUID | None,
    pose: str,
    action: str | None,
    outcome: str,
    policy: str | None,
    arm: str | None,
    speculated_depth: int | None,
    speculated_probability: float | None,
) -> None:
    """Record a chunk request's outcome (its wait is filled in by ``request_served``).

    The row is noted on the HTTP request's ClientWatch (``orchestrator.abandon``), so it is
    marked abandoned if that client leaves before the answer.
    """
    watch = current_watch()
    if watch is not None:
        watch.note_request(request_id)
    await conn.execute(
        query("request_insert"),
        request_id,
        session_id,
        memory_id,
        parent_id,
        chunk_id,
        job_id,
        pose,
        action,
        outcome,
        policy,
        arm,
        speculated_depth,
        speculated_probability,
    )


async def request_served(
    conn: Conn, request_id: uuid.UUID, wait_ms: float | None, error: str | None = None
) -> None:
    """Record when a request was answered (wait in milliseconds) or why it failed."""
    await conn.execute(query("request_served"), request_id, wait_ms, error)


async def interrupt_open_jobs(conn: Conn, reason: str) -> list[Row]:
    """Mark every queued/running job interrupted; return (id, chunk_id, kind) of each."""
    rows: list[Row] = await conn.fetch(query("jobs_interrupt_open"), reason)
    return rows


async def pending_chunks(conn: Conn) -> list[Row]:
    """Chunks still pending (accepted but not generated), with the first requesting session."""
    rows: list[Row] = await conn.fetch(query("chunks_pending"))
    return rows


async def set_job_external_id(conn: Conn, job_id: uuid.UUID, external_id: str) -> None:
    """Store the backend's id of a job's remote call (e.g. a Modal FunctionCall id)."""
    await conn.execute(query("job_external_id"), job_id, external_id)


async def insert_memory_cost(
    conn: Conn,
    memory_id: uuid.UUID,
    *,
    kind: str,
    backend: str,
    model: str | None,
    units: str,
    quantity: float,
    usd: float,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    characters: int | None = None,
) -> None:
    """Record one billed external call for a memory (kind 'llm' or 'sound')."""
    await conn.execute(
        query("memory_cost_insert"),
        memory_id,
        kind,
        backend,
        model,
        units,
        quantity,
        input_tokens,
        output_tokens,
        characters,
        usd,
    )


async def memory_cost(conn: Conn, memory_id: uuid.UUID) -> Row | None:
    """The memory's v_memory_costs row (GPU, LLM and sound totals), or None if unknown."""
    row: Row | None = await conn.fetchrow(query("memory_cost_get"), memory_id)
    return row
