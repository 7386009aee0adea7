"""The elected scheduler's intake of API replicas' requests (issue 16).

API replicas never run jobs. What they accept reaches the scheduler through two tables
(migration 007), announced on ``rewind_demands`` and re-read every ``poll_s`` seconds in case a
notification was missed:

- ``replica_hits``: hits a replica answered from its own view. Each is replayed into the live
  state (``LiveState.request``: the session's cursor moves, its policy learns the action), as a
  hit answered in this process would be; the replica already wrote the analytics row, so
  nothing is written here.
- ``chunk_demands``: misses and in-flight hits. Each is served through ``Scheduler.request_chunk``
  under the replica's request id (claim, job promotion, ``chunk_requests`` row, the wait), then
  answered in its row (``demand_answer``: NOTIFY ``rewind_answers``). Rows are taken with
  ``FOR UPDATE SKIP LOCKED``; rows taken by a leader that died are served again by the next one
  (``request_insert`` is idempotent on the id), so a dead replica or a dead scheduler loses no
  accepted request.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from orchestrator.db import Database
from orchestrator.errors import ApiError
from orchestrator.live import ParentNotReady, UnknownMemory
from orchestrator.queries import query
from orchestrator.scheduler import Scheduler

log = structlog.get_logger(__name__)

_BATCH = 500  # rows per take: a burst of replicas' requests is drained in a few round trips
_SWEEP_EVERY = 60  # polls between two deletions of old answered demands


def _uuid(value: object) -> uuid.UUID | None:
    return value if isinstance(value, uuid.UUID) else None


class Intake:
    """Takes replicas' hits and demands into the scheduler. ``start()``, ``close()``.

    Args:
        scheduler: the started scheduler (this process holds the leader lock).
        db: the database.
        name: this scheduler in ``chunk_demands.taken_by``.
        note_user: ``Usage.note_session`` (session id, user id): per-user speculation caps.
        poll_s: seconds between two catch-up takes.
        keep_answered_s: answered demand rows older than this are deleted.
    """

    def __init__(
        self, scheduler: Scheduler, db: Database, *, name: str,
        note_user: Callable[[uuid.UUID, uuid.UUID | None], None] | None = None,
        poll_s: float = 1.0, keep_answered_s: float = 600.0,
    ) -> None:  # fmt: skip
        self.scheduler, self.db, self.name, self.note_user = scheduler, db, name, note_user
        self.poll_s, self.keep_answered_s = poll_s, keep_answered_s
        self._kick = asyncio.Event()
        self._listen: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._serving: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._users: set[uuid.UUID] = set()  # sessions whose user the usage gate knows
        self.served = 0  # demands answered (harnesses read it)

    async def start(self) -> None:
        """Listen, then take what is already waiting (a previous leader's rows included)."""
        await self._connect()
        self._task = asyncio.create_task(self._loop(), name="rewind-intake")
        self._kick.set()

    async def _connect(self) -> None:
        try:
            conn = await self.db.listen_connection()
            await conn.add_listener("rewind_demands", self._on_notify)
            self._listen = conn
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("intake_listen_failed", error=f"{type(exc).__name__}: {exc}")

    def _on_notify(self, *_args: object) -> None:
        self._kick.set()

    async def close(self) -> None:
        """Stop taking; demands being served are left to the scheduler's own close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._serving.values()):
            task.cancel()
        if self._serving:
            await asyncio.wait(list(self._serving.values()), timeout=5.0)
        if self._listen is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._listen.close(), 2.0)

    async def _loop(self) -> None:
        polls = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.poll_s)
            self._kick.clear()
            try:
                if self._listen is None or self._listen.is_closed():
                    await self._connect()
                await self.drain()
                polls += 1
                if polls % _SWEEP_EVERY == 0:
                    async with self.db.pool.acquire() as conn:
                        await conn.execute(query("demands_sweep"), self.keep_answered_s)
            except Exception as exc:
                log.warning("intake_failed", error=f"{type(exc).__name__}: {exc}")

    async def drain(self) -> None:
        """Take every waiting hit (replayed now, in order) and demand (served in a task)."""
        async with self.db.pool.acquire() as conn:
            hits = await conn.fetch(query("replica_hits_take"), _BATCH * 4)
            demands = await conn.fetch(
                query("demands_take"), self.name, _BATCH, list(self._serving)
            )
        for hit in hits:
            await self._replay_hit(hit)
        for d in demands:
            rid = d["request_id"]
            task = asyncio.create_task(self._serve(d), name=f"demand-{rid}")
            self._serving[rid] = task
            task.add_done_callback(self._done(rid))
        if len(hits) >= _BATCH * 4 or len(demands) >= _BATCH:
            self._kick.set()

    def _done(self, rid: uuid.UUID) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._serving.pop(rid, None)

        return forget

    async def _session(self, memory_id: uuid.UUID, session: object) -> uuid.UUID | None:
        session_id = _uuid(session)
        resolved = await self.scheduler.resolve_session(memory_id, session_id)
        if resolved is not None and self.note_user is not None and resolved not in self._users:
            async with self.db.pool.acquire() as conn:
                user = await conn.fetchval(query("session_user"), resolved)
            self.note_user(resolved, _uuid(user))
            self._users.add(resolved)
        return resolved

    async def _replay_hit(self, hit: asyncpg.Record) -> None:
        """A replica's hit, as the live state would have seen it here (cursor, history)."""
        memory_id = hit["memory_id"]
        try:
            if not await self.scheduler.ensure_memory(memory_id):
                return
            session_id = await self._session(memory_id, hit["session_id"])
        except LookupError as exc:
            log.info("replica_hit_skipped", error=str(exc))
            return
        parent, pose, action = hit["parent_chunk_id"], hit["pose"], hit["action"]
        sched = self.scheduler
        try:
            res = sched.live.request(
                str(memory_id), str(parent) if parent else None, pose, action,
                request_id=str(hit["request_id"]),
                session_id=str(session_id) if session_id else None, now=sched.clock(),
                record_history=hit["record_history"],
            )  # fmt: skip
        except (ParentNotReady, UnknownMemory) as exc:
            log.info("replica_hit_skipped", error=str(exc))
            return
        sched.wake()
        if res.outcome != "hit":
            # The rare race where this state does not see the chunk ready yet (its job is
            # ending): the request waits here like an in-flight hit; its promotion is durable.
            try:
                await sched.jobs.persist_request(res, memory_id, parent, pose, action)
            except Exception as exc:  # analytics only: the next notes must still be replayed
                log.warning("replica_hit_promotion_failed", error=f"{type(exc).__name__}: {exc}")

    async def _serve(self, d: asyncpg.Record) -> None:
        rid, memory_id = d["request_id"], d["memory_id"]
        answer: tuple[Any, ...]
        try:
            if not await self.scheduler.ensure_memory(memory_id):
                raise LookupError(f"no memory {memory_id}")
            session_id = await self._session(memory_id, d["session_id"])
            served = await self.scheduler.request_chunk(
                memory_id=memory_id, parent_id=d["parent_chunk_id"], pose=d["pose"],
                action=d["action"], session_id=session_id, record_history=d["record_history"],
                request_id=rid, waited_s=max(0.0, float(d["age_s"])),
            )  # fmt: skip
            answer = (served.chunk_id, served.chunk_index, served.outcome, served.job_id,
                      served.wait_ms, None, None)  # fmt: skip
        except asyncio.CancelledError:
            raise  # this scheduler stops: the next leader serves the row again
        except ApiError as exc:
            job = getattr(exc, "job_id", None)
            chunk = getattr(exc, "chunk_id", None)
            answer = (_as_uuid(chunk), None, None, _as_uuid(job), None, exc.error, exc.detail)
        except (LookupError, ParentNotReady) as exc:
            code = "parent_not_ready" if isinstance(exc, ParentNotReady) else "not_found"
            answer = (None, None, None, None, None, code, str(exc))
        except (OSError, asyncpg.PostgresError) as exc:
            # Not accepted here (the database refused): taken again on a later poll.
            log.warning("demand_retry", request_id=str(rid), error=f"{type(exc).__name__}: {exc}")
            return
        await self._answer(rid, answer)

    async def _answer(self, rid: uuid.UUID, answer: tuple[Any, ...]) -> None:
        for delay in (0.0, 0.2, 0.5, 1.0, 2.0):
            await asyncio.sleep(delay)
            try:
                async with self.db.pool.acquire() as conn:
                    await conn.execute(query("demand_answer"), rid, *answer)
                self.served += 1
                return
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("demand_answer_retry", request_id=str(rid), error=str(exc))
        # Left unanswered: the replica's poll finds the chunk_requests row served (or a later
        # leader serves the demand again, as a hit).


def _as_uuid(value: object) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    return None
