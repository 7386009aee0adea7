"""An API replica's scheduler face (``[cluster] role = "api"``, issue 16).

It offers the API what ``Scheduler`` offers (``ensure_memory``, ``node``, ``resolve_session``,
``request_chunk``, ``policies``, ``writer``, ...) without a live state, a GPU pool or jobs:

- **a hit** (the replica's ``ReadyView`` knows the chunk is ready) is answered from memory, and
  its rows are written behind as in one process, plus a ``replica_hits`` note that carries the
  cursor move and the action to the elected scheduler's live state and policies;
- **anything else** is handed to the scheduler: this session's queued hits are flushed first
  (order), then one ``chunk_demands`` row + NOTIFY ``rewind_demands`` in one transaction. Once
  committed the request is accepted: if this process dies the scheduler serves the row anyway,
  and the client's retry finds the chunk in flight or ready. The replica waits for the row's
  answer (NOTIFY ``rewind_answers``, or its poll every ``poll_s``).
- No scheduler holding the leader lock: a new demand is refused with 503 ``scheduler_unavailable``
  and ``Retry-After``; a waiting one answers the same after ``leaderless_timeout_s`` (it stays
  accepted), and 504 ``wait_timeout`` after ``wait_timeout_s`` in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from orchestrator import live_store, repo
from orchestrator.config import ClusterConfig
from orchestrator.core.types import NodeState
from orchestrator.db import Database
from orchestrator.errors import (
    ApiError,
    Conflict,
    DatabaseUnavailable,
    NotFound,
    SchedulerUnavailable,
)
from orchestrator.events import EventBus
from orchestrator.experiments import Arm
from orchestrator.jobs import GenerationFailed
from orchestrator.leader import leader_present
from orchestrator.metrics import Metrics
from orchestrator.policy_host import PolicyHost
from orchestrator.queries import query
from orchestrator.replica_view import ReadyView, ViewNode
from orchestrator.scheduler_types import SchedulerConfig, ServedChunk
from orchestrator.writebehind import WriteBehind

log = structlog.get_logger(__name__)

_CATCH_UP_MARGIN_S = 5.0  # re-read this much before the last catch-up (late commits)
_IDLE_MEMORY_S = 3600.0  # a memory nobody asked for this long leaves the view


@dataclass(frozen=True, slots=True)
class _Session:
    memory_id: uuid.UUID
    policy: str
    arm: str


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


class WaitTimeout(ApiError):
    """504: the chunk is still being generated after the replica's longest wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            504, "wait_timeout",
            f"the chunk is still being generated after {seconds:g} s; retry the same request "
            "later (it stays accepted)", headers={"retry-after": "5"},
        )  # fmt: skip


class ReplicaScheduler:
    """The API's scheduler on a replica. Create, ``await start()``, ``await close()``.

    Args:
        db: the database (its DSN must allow LISTEN: session mode).
        config: arms, experiment (sessions are assigned arms here as in one process).
        cluster: ``[cluster]`` timings and this replica's name.
    """

    def __init__(
        self, db: Database, config: SchedulerConfig, cluster: ClusterConfig, *, name: str,
        events: EventBus | None = None, metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.db, self.cluster, self.name, self.clock = db, cluster, name, clock
        self.events = events or EventBus()
        self.metrics = metrics or Metrics()
        self.policies = PolicyHost(config.arms, config.experiment)
        self.writer = WriteBehind(db)
        self.view = ReadyView()
        self.leader = False  # some scheduler holds the lock (checked every poll)
        self.accepted = 0  # demands made durable so far
        self._leaderless_since: float | None = None
        self._sessions: dict[str, _Session] = {}
        self._latest: dict[str, uuid.UUID] = {}
        self._answers: dict[uuid.UUID, asyncio.Future[None]] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._listen: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._since: datetime | None = None
        self._busy: dict[str, int] = {"demand": 0, "speculative": 0}

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for chunk changes and answers, learn whether a scheduler runs, then poll."""
        self.writer.start()
        await self._connect()
        await self._poll()
        self._task = asyncio.create_task(self._loop(), name="rewind-replica")

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop polling and listening; flush the hits written behind."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._listen is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen.close(), 2.0)
        await self.writer.close(timeout_s)

    def reconfigure(self, config: SchedulerConfig) -> None:
        """New arms for new sessions (the scheduler applies budget and policies itself)."""
        self.policies.reconfigure(config.arms, config.experiment)

    async def _connect(self) -> None:
        try:
            conn = await self.db.listen_connection()
            await conn.add_listener("rewind_chunks", self._on_chunk)
            await conn.add_listener("rewind_answers", self._on_answer)
            self._listen = conn
        except (OSError, asyncpg.PostgresError) as exc:
            self._listen = None
            log.warning("replica_listen_failed", error=f"{type(exc).__name__}: {exc}")

    def _on_chunk(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        node = self.view.apply(json.loads(str(payload)))
        if node is not None and node.state == "ready":
            self.events.publish(node.memory_id, "chunk_ready", chunk_id=node.chunk_id)

    def _on_answer(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        fut = self._answers.get(uuid.UUID(str(payload)))
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.cluster.poll_s)
            try:
                if self._listen is None or self._listen.is_closed():
                    await self._connect()
                await self._poll()
            except Exception as exc:
                log.warning("replica_poll_failed", error=f"{type(exc).__name__}: {exc}")

    async def _poll(self) -> None:
        """Leader presence, the cluster's busy slots, and the view's catch-up."""
        async with self.db.pool.acquire() as conn:
            present = await leader_present(conn)
            busy = await conn.fetch(query("open_jobs_count"))
            now_db: datetime = await conn.fetchval(query("db_now"))
            ids = self.view.memory_ids()
            rows = []
            if ids and self._since is not None:
                rows = await conn.fetch(query("chunks_ready_since"), ids, self._since)
        self._since = now_db - timedelta(seconds=_CATCH_UP_MARGIN_S)
        for r in rows:
            self.view.apply(dict(r))
        self._busy = {"demand": 0, "speculative": 0} | {r["kind"]: r["n"] for r in busy}
        now = self.clock()
        if present:
            self._leaderless_since = None
        elif self._leaderless_since is None:
            self._leaderless_since = now
            log.warning("scheduler_absent")
        self.leader = present
        self.view.evict_idle(now, _IDLE_MEMORY_S)

    # ---- memories and sessions ---------------------------------------------------------------

    async def ensure_memory(self, memory_id: uuid.UUID) -> bool:
        """Load the memory's chunks into the view if needed; False if there is no memory."""
        key = str(memory_id)
        if self.view.has(key):
            return True
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            if self.view.has(key):
                return True
            async with self.db.pool.acquire() as conn:
                if await repo.get_memory(conn, memory_id) is None:
                    return False
                rows = await conn.fetch(query("chunks_of_memory_live"), memory_id)
            self.view.load(key, [dict(r) for r in rows], self.clock())
        self._loading.pop(key, None)
        return True

    def node(self, memory_id: uuid.UUID, chunk_id: uuid.UUID) -> ViewNode | None:
        """A known chunk of a loaded memory (``state``, ``depth``), or None."""
        return self.view.node(str(memory_id), str(chunk_id))

    async def refresh_node(self, memory_id: uuid.UUID, chunk_id: uuid.UUID) -> ViewNode | None:
        """The chunk as the database has it now (the view may trail a notification by a few
        milliseconds: a client asks this replica for the child of a chunk another served)."""
        async with self.db.pool.acquire() as conn:
            row = await conn.fetchrow(query("chunk_live"), chunk_id)
        if row is None or row["memory_id"] != memory_id:
            return self.node(memory_id, chunk_id)
        return self.view.apply(dict(row))

    async def open_session(
        self, session_id: uuid.UUID, memory_id: uuid.UUID, cursor: uuid.UUID,
        arm: str | None = None,
    ) -> Arm:  # fmt: skip
        """Remember a session whose row the caller wrote; the scheduler loads it from its row
        when a demand or hit of it arrives. Raises LookupError: no such memory."""
        if not await self.ensure_memory(memory_id):
            raise LookupError(f"no memory {memory_id}")
        chosen = (self.policies.arm(arm) if arm else None) or self.policies.assign(session_id)
        self._sessions[str(session_id)] = _Session(memory_id, chosen.policy, chosen.name)
        self._latest[str(memory_id)] = session_id
        return chosen

    async def resolve_session(
        self, memory_id: uuid.UUID, session_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        """As ``Scheduler.resolve_session``: the session a request belongs to (cached after its
        row was read once). Raises LookupError: unknown, or another memory's."""
        if session_id is None:
            latest = self._latest.get(str(memory_id))
            session_id = latest or await live_store.latest_session(self.db, memory_id)
            if session_id is None:
                return None
        known = self._sessions.get(str(session_id))
        if known is None:
            async with self.db.pool.acquire() as conn:
                row = await repo.get_session(conn, session_id)
            if row is None:
                raise LookupError(f"no session {session_id} on memory {memory_id}")
            known = _Session(row["memory_id"], row["policy"], row["arm"])
            self._sessions[str(session_id)] = known
        if known.memory_id != memory_id:
            raise LookupError(f"no session {session_id} on memory {memory_id}")
        return session_id

    # ---- requests ----------------------------------------------------------------------------

    async def request_chunk(
        self, *, memory_id: uuid.UUID, parent_id: uuid.UUID | None, pose: str,
        action: str | None, session_id: uuid.UUID | None, record_history: bool = True,
    ) -> ServedChunk:  # fmt: skip
        """Serve chunk key (memory, parent, pose): a hit from the view, else through the
        scheduler (see the module docstring).

        Raises:
            SchedulerUnavailable: (503) no scheduler to hand a miss to.
            GenerationFailed / DatabaseUnavailable / NotFound / Conflict: the scheduler's answer.
            WaitTimeout: (504) not ready after ``wait_timeout_s``.
            asyncpg / OSError errors: the demand could not be made durable (not accepted).
        """
        t0, request_id = self.clock(), uuid.uuid4()
        sess = self._sessions.get(str(session_id)) if session_id is not None else None
        node = self.view.by_key(str(memory_id), str(parent_id) if parent_id else None, pose, t0)
        if node is not None and node.state == "ready":
            self._record_hit(node, request_id, memory_id, parent_id, pose, action, session_id,
                             sess, record_history)  # fmt: skip
            return self._answer(node, "hit", request_id, memory_id, parent_id, pose, action,
                                0.0, _uuid(node.job_id), sess)  # fmt: skip
        if not self.leader:
            raise SchedulerUnavailable(max(1, round(self.cluster.leader_poll_s * 4)))
        fut = self._answers[request_id] = asyncio.get_running_loop().create_future()
        try:
            await self.writer.flush()  # this session's earlier hits reach the scheduler first
            async with self.db.pool.acquire() as conn, conn.transaction():
                await conn.execute(query("demand_insert"), request_id, memory_id, parent_id,
                                   pose, action, session_id, record_history, self.name)  # fmt: skip
                await conn.execute(query("demand_notify"), self.name)
            self.accepted += 1
            row = await self._wait(request_id, fut, t0)
        finally:
            self._answers.pop(request_id, None)
        return self._from_answer(row, request_id, memory_id, parent_id, pose, action, t0, sess)

    def _record_hit(
        self, node: ViewNode, request_id: uuid.UUID, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None,
        session_id: uuid.UUID | None, sess: _Session | None, record_history: bool,
    ) -> None:  # fmt: skip
        chunk_id, job_id = uuid.UUID(node.chunk_id), _uuid(node.job_id)
        first_use = node.speculative and not node.used
        node.used = node.used or node.speculative
        self.writer.hit(
            request_id, session_id=session_id, memory_id=memory_id, parent_id=parent_id,
            chunk_id=chunk_id, job_id=job_id, pose=pose, action=action,
            policy=sess.policy if sess else None, arm=sess.arm if sess else None,
            depth=node.spec_depth, probability=node.probability, at=datetime.now(UTC),
        )  # fmt: skip
        if session_id is not None:
            self.writer.move(session_id, chunk_id, hit=True)
        if first_use and job_id is not None:
            self.writer.used(job_id, hit=True)
        self.writer.replica_hit(request_id, memory_id=memory_id, parent_id=parent_id, pose=pose,
                                action=action, session_id=session_id,
                                record_history=record_history)  # fmt: skip

    async def _wait(self, rid: uuid.UUID, fut: asyncio.Future[None], t0: float) -> Any:
        """The demand's answered row, by notification or by poll (see the module docstring)."""
        c = self.cluster
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), c.poll_s)
            async with self.db.pool.acquire() as conn:
                row = await conn.fetchrow(query("demand_get"), rid)
            if row is not None and row["answered_at"] is not None:
                return row
            now = self.clock()
            gone = self._leaderless_since
            if gone is not None and now - gone > c.leaderless_timeout_s:
                raise SchedulerUnavailable(
                    5, "no scheduler has been running for "
                    f"{now - gone:.0f} s; the request stays accepted: retry it in 5 s",
                )  # fmt: skip
            if now - t0 > c.wait_timeout_s:
                raise WaitTimeout(c.wait_timeout_s)

    def _from_answer(
        self, row: Any, rid: uuid.UUID, memory_id: uuid.UUID, parent_id: uuid.UUID | None,
        pose: str, action: str | None, t0: float, sess: _Session | None,
    ) -> ServedChunk:  # fmt: skip
        error, detail = row["error"], row["detail"] or ""
        if error is not None:
            raise _error(error, detail, row["job_id"], row["chunk_id"])
        cid = str(row["chunk_id"])
        node = self.view.node(str(memory_id), cid) or ViewNode(
            cid, str(memory_id), str(parent_id) if parent_id else None, pose, action, "ready",
            row["chunk_index"],
        )  # fmt: skip
        wait_ms = (self.clock() - t0) * 1000.0
        return self._answer(node, row["outcome"], rid, memory_id, parent_id, pose, action,
                            wait_ms, row["job_id"], sess)  # fmt: skip

    def _answer(
        self, node: ViewNode, outcome: Any, request_id: uuid.UUID, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None, wait_ms: float,
        job_id: uuid.UUID | None, sess: _Session | None,
    ) -> ServedChunk:  # fmt: skip
        policy, arm = (sess.policy, sess.arm) if sess else ("", "")
        self.metrics.requests.labels(outcome=outcome, policy=policy, arm=arm).inc()
        self.metrics.wait.labels(outcome=outcome, policy=policy).observe(wait_ms / 1000.0)
        self.events.publish(str(memory_id), "chunk_served", chunk_id=node.chunk_id,
                            outcome=outcome, wait_ms=round(wait_ms, 1))  # fmt: skip
        return ServedChunk(
            uuid.UUID(node.chunk_id), memory_id, parent_id, pose, node.action or action,
            node.depth, outcome, wait_ms, job_id, request_id,
        )  # fmt: skip

    # ---- introspection -----------------------------------------------------------------------

    def busy_slots(self) -> dict[str, int]:
        """GPU slots held across the cluster, by job kind (as of the last poll)."""
        return dict(self._busy)

    def queued_demands(self) -> int:
        """Requests this replica is waiting on."""
        return len(self._answers)

    async def tree_states(self, memory_id: uuid.UUID) -> dict[str, NodeState]:
        """chunk id -> state of the memory's chunks as this replica knows them."""
        await self.ensure_memory(memory_id)
        return self.view.states(str(memory_id))


def _error(code: str, detail: str, job_id: object, chunk_id: object) -> ApiError:
    """The API error a scheduler's answer names (the same the scheduler's own API raises)."""
    if code == "generation_failed":
        exc = GenerationFailed(str(job_id or "?"), str(chunk_id or "?"), "")
        exc.detail = detail
        exc.args = (detail,)
        return exc
    if code == "database_unavailable":
        return DatabaseUnavailable(1)
    if code == "not_found":
        return NotFound(detail)
    if code == "parent_not_ready":
        return Conflict(code, detail, field="parent_chunk_id")
    return ApiError(502, code, detail)
