"""GPU jobs as asyncio tasks: the part of the scheduler shell that runs what the live state
started and reports each end back to it.

Per job: claim the chunk row if the live state says so and insert the attempt row (under the
chunk's lock), run it on the pool through ``JobRunner``, tell the live state how it ended, answer
the waiters (before any write about the end: a database fault must never leave a viewer
hanging), then persist a failure or cancellation, retried with back-off.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Callable

import structlog
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from orchestrator import repo
from orchestrator.core.types import JobKind
from orchestrator.db import Database
from orchestrator.db_supervisor import is_database_error, outage_error
from orchestrator.events import EventBus
from orchestrator.jobs import ActiveJob, GenerationFailed, JobRunner
from orchestrator.live import CancelledJob, Claim, Ended, LiveJob, LiveState, Resolution, StartedJob
from orchestrator.metrics import Metrics
from orchestrator.queries import Conn

log = structlog.get_logger(__name__)

_PERSIST_WAIT_S = 15.0  # per attempt: how long a job's end waits for the database to return


def _active(job: LiveJob) -> ActiveJob:
    return ActiveJob(
        chunk_id=uuid.UUID(job.chunk_id), memory_id=uuid.UUID(job.memory_id),
        parent_id=uuid.UUID(job.parent_id) if job.parent_id else None, pose=job.pose,
        action=job.action, kind=job.kind,
        session_id=uuid.UUID(job.session_id) if job.session_id else None, policy=job.policy,
        arm=job.arm, probability=job.probability, depth=job.depth,
        expected_gpu_s=job.expected_gpu_s, started_at=job.started_at,
        job_id=uuid.UUID(job.job_id), initial_kind=job.initial_kind,
    )  # fmt: skip


class JobTasks:
    """The running jobs' tasks, their shared waiters and the per-chunk write locks."""

    def __init__(
        self, db: Database, runner: JobRunner, live: LiveState, events: EventBus,
        metrics: Metrics, clock: Callable[[], float], *, on_end: Callable[[], None],
        usd_per_gpu_s: float = 0.0,
    ) -> None:  # fmt: skip
        self.db, self.runner, self.live, self.events, self.metrics, self.clock = (
            db, runner, live, events, metrics, clock)  # fmt: skip
        self.on_end, self.usd_per_gpu_s = on_end, usd_per_gpu_s
        self._tasks: dict[str, asyncio.Task[None]] = {}  # chunk id -> task of its current job
        self._active: dict[str, ActiveJob] = {}  # chunk id -> the job's attempt state
        self._waiters: dict[str, asyncio.Future[None]] = {}  # chunk id -> shared future
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())  # fmt: skip
        self._closing = False
        self.resume_calls: dict[str, str] = {}  # chunk id -> remote call to re-attach to

    def lock(self, chunk_id: str) -> asyncio.Lock:
        """The lock every write about chunk row ``chunk_id`` is made under."""
        return self._locks.setdefault(chunk_id, asyncio.Lock())

    def waiter(self, chunk_id: str) -> asyncio.Future[None]:
        """The future every request waiting for ``chunk_id`` shares."""
        fut = self._waiters.get(chunk_id)
        if fut is None:
            fut = self._waiters[chunk_id] = asyncio.get_running_loop().create_future()
        return fut

    # ---- requests ----------------------------------------------------------------------------

    async def persist_request(
        self, res: Resolution, memory_id: uuid.UUID, parent_id: uuid.UUID | None, pose: str,
        action: str | None,
    ) -> str | None:  # fmt: skip
        """The chunk-row writes a miss or in-flight hit needs before it may wait; returns the id
        of the attempt generating the chunk, if one runs.

        Raises:
            asyncpg / OSError errors: the database refused (the request is not accepted).
            RuntimeError: the key has a row under another id (another process wrote it).
        """
        active = self._active.get(res.chunk_id)  # read before any await
        if res.outcome == "miss":
            # Under the chunk's lock even without a claim of our own: an identical request
            # that came first may still be writing the row our request row refers to.
            async with self.lock(res.chunk_id):
                if res.claim != "none":
                    async with self.db.pool.acquire() as conn:
                        await self._claim(conn, res.claim, res.chunk_id, memory_id, parent_id,
                                          pose, action, res.chunk_index)  # fmt: skip
        if active is None:
            return None
        await active.row_written.wait()
        if res.promote or res.mark_used:
            async with self.db.pool.acquire() as conn:
                if res.promote:
                    await repo.promote_job(conn, active.job_id)
                if res.mark_used:
                    await repo.mark_job_used(conn, active.job_id)
        return str(active.job_id)

    async def _claim(
        self, conn: Conn, claim: Claim, chunk_id: str, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None, chunk_index: int,
    ) -> None:  # fmt: skip
        if claim == "reclaim":
            await repo.reclaim_chunk(conn, uuid.UUID(chunk_id))
            return
        profile = self.runner.profile
        row, created = await repo.claim_chunk(
            conn, chunk_id=uuid.UUID(chunk_id), memory_id=memory_id, parent_id=parent_id,
            chunk_index=chunk_index, pose=pose, action=action, profile_key=profile.key(),
            profile=profile.to_json(),
        )  # fmt: skip
        if not created and str(row["id"]) != chunk_id:
            raise RuntimeError(f"chunk key of {chunk_id} is already row {row['id']}")

    # ---- jobs --------------------------------------------------------------------------------

    def start(self, started: StartedJob) -> None:
        """Run a job the live state started (its slot is already taken there)."""
        job = _active(started.job)
        chunk = started.job.chunk_id
        job.resume_call_id = self.resume_calls.pop(chunk, None)
        node = self.live.node(started.job.memory_id, chunk)
        index = node.depth if node is not None else 0
        self._active[chunk] = job
        task = asyncio.create_task(self._run(job, started.job, started.claim, index),
                                   name=f"job-{job.job_id}")  # fmt: skip
        self._tasks[chunk] = task
        if job.initial_kind == "speculative":
            self.events.publish(
                str(job.memory_id), "speculation_started", chunk_id=chunk, pose=job.pose,
                action=job.action, probability=round(job.probability, 4), depth=job.depth,
            )  # fmt: skip

    def cancel(self, cancelled: CancelledJob) -> None:
        """Stop a job the live state cancelled."""
        task = self._tasks.get(cancelled.chunk_id)
        job = self._active.get(cancelled.chunk_id)
        if task is None or job is None or str(job.job_id) != cancelled.job_id:
            return
        job.cancel_reason = cancelled.reason
        task.cancel()
        self.events.publish(cancelled.memory_id, "speculation_cancelled",
                            chunk_id=cancelled.chunk_id, reason=cancelled.reason)  # fmt: skip

    async def _run(self, job: ActiveJob, live_job: LiveJob, claim: Claim, index: int) -> None:
        chunk = live_job.chunk_id
        ok, gpu_s, cancelled, cold, load_s = False, None, False, False, 0.0
        failure: Exception | None = None
        try:
            try:
                async with self.lock(chunk), self.db.pool.acquire() as conn, conn.transaction():
                    if claim != "none":
                        await self._claim(conn, claim, chunk, job.memory_id, job.parent_id,
                                          job.pose, job.action, index)  # fmt: skip
                    job.kind = live_job.kind  # promoted before its row existed
                    await self.runner.insert_attempt(conn, job)
            finally:
                job.row_written.set()
            result, _ = await self.runner.run(job)
            ok, gpu_s = True, result.gpu_seconds
            cold, load_s = result.cold_start, result.timings.get("load", 0.0)
        except asyncio.CancelledError:
            cancelled = True
            failure = GenerationFailed(str(job.job_id), chunk, "cancelled")
        except Exception as exc:
            log.warning("job_failed", job_id=str(job.job_id), error=str(exc))
            failure = await self._failure(exc, str(job.job_id), chunk)
        ended = self.live.job_ended(
            live_job.job_id,
            chunk,
            live_job.memory_id,
            ok=ok,
            now=self.clock(),
            gpu_s=gpu_s,
            made_by=str(job.job_id),
            cold_start=cold,
            load_s=load_s,
        )
        self._answer(ended, failure)
        if self._tasks.get(chunk) is asyncio.current_task():
            del self._tasks[chunk]
            self._active.pop(chunk, None)
        self._count(job, ok, cancelled, gpu_s)
        self.on_end()
        if ok:
            self.events.publish(str(job.memory_id), "chunk_ready", chunk_id=chunk,
                                kind=ended.kind, gpu_seconds=round(gpu_s or 0.0, 3))  # fmt: skip
        elif cancelled:
            await self._persist(self._persist_cancel, job)
        else:
            await self._persist(self._persist_failure, job, str(failure))

    async def _failure(self, exc: Exception, job_id: str, chunk: str) -> Exception:
        """What waiters get: 503 ``database_unavailable`` (Retry-After) when the database broke
        the job, else 502 ``generation_failed`` naming the attempt. An error that may also come
        from storage (an ``OSError``) counts as the database's only if a fresh probe fails."""
        cause = exc.__cause__ if isinstance(exc, GenerationFailed) else exc
        outage = await outage_error(self.db.supervisor, cause) if cause is not None else None
        if outage is not None:
            return outage
        if isinstance(exc, GenerationFailed):
            return exc
        return GenerationFailed(job_id, chunk, f"{type(exc).__name__}: {exc}")

    def _answer(self, ended: Ended, failure: BaseException | None) -> None:
        if ended.state == "unchanged":
            return
        fut = self._waiters.pop(ended.chunk_id, None)
        if fut is None or fut.done():
            return
        if ended.state == "ready":
            fut.set_result(None)
        else:
            fut.set_exception(failure or GenerationFailed("?", ended.chunk_id, "failed"))
            fut.exception()  # retrieved: a speculation may have had nobody waiting

    def _count(self, job: ActiveJob, ok: bool, cancelled: bool, gpu_s: float | None) -> None:
        kind: JobKind = job.initial_kind
        status = "succeeded" if ok else "cancelled" if cancelled else "failed"
        spent = gpu_s if gpu_s is not None else max(0.0, self.clock() - job.started_at)
        self.metrics.gpu_seconds.labels(kind=kind).inc(spent)
        self.metrics.jobs.labels(kind=kind, status=status).inc()
        if cancelled and kind == "speculative" and job.cancel_reason is not None:
            self.metrics.cancelled.labels(reason=job.cancel_reason).inc()

    # ---- persisting ends ---------------------------------------------------------------------

    async def _persist(self, write: Callable[..., object], *args: object) -> None:
        """Write a job's end, after its waiters were answered: retried with back-off, and
        through a database outage (up to ``_PERSIST_WAIT_S``) by waiting for the supervisor."""
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(4), reraise=True,
                                               wait=wait_exponential(0.2, max=2.0)):  # fmt: skip
                with attempt:
                    try:
                        await write(*args)  # type: ignore[misc]
                    except Exception as exc:
                        supervisor = self.db.supervisor
                        if supervisor is not None and is_database_error(exc):
                            supervisor.notice_failure(exc)
                            await supervisor.wait_available(_PERSIST_WAIT_S)
                        raise
        except Exception as exc:
            log.error("job_end_not_recorded", error=f"{type(exc).__name__}: {exc}")

    def _nobody_wants(self, job: ActiveJob) -> bool:
        node = self.live.node(str(job.memory_id), str(job.chunk_id))
        return node is None or node.state == "failed"

    async def _persist_cancel(self, job: ActiveJob) -> None:
        status = "cancelled"
        if self._closing and job.cancel_reason is None:
            # Shutting down: an accepted demand is resumed by the next start; a speculation is
            # simply dropped (the next planner decides again).
            status = "interrupted" if job.kind == "demand" else "cancelled"
            job.cancel_reason = job.cancel_reason or ("shutdown" if status == "cancelled" else None)
        spent = max(0.0, self.clock() - job.started_at)
        lock = self.lock(str(job.chunk_id))
        async with lock, self.db.pool.acquire() as conn, conn.transaction():
            await repo.job_ended(
                conn,
                job.job_id,
                status,
                cancel_reason=job.cancel_reason,
                gpu_seconds=spent,
                usd_per_gpu_s=self.usd_per_gpu_s,
            )
            if status == "cancelled" and self._nobody_wants(job):
                await repo.set_chunk_status(conn, job.chunk_id, "cancelled")

    async def _persist_failure(self, job: ActiveJob, error: str) -> None:
        lock = self.lock(str(job.chunk_id))
        async with lock, self.db.pool.acquire() as conn, conn.transaction():
            await repo.job_ended(
                conn, job.job_id, "failed", error=error, usd_per_gpu_s=self.usd_per_gpu_s
            )
            if self._nobody_wants(job):
                await repo.set_chunk_status(conn, job.chunk_id, "failed")

    async def close(self, timeout_s: float) -> None:
        """Interrupt every running job and wait (at most ``timeout_s`` seconds) for their ends."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            if late:
                log.warning("jobs_not_stopped", count=len(late))
