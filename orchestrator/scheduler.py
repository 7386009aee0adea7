"""The scheduler shell: carries out what the live state decides (DESIGN.md, "functional core,
imperative shell").

``orchestrator.live.LiveState`` decides: how a request is served, which jobs start and which
are cancelled, what a job's end means. This shell only does the asynchronous part: durable
writes (misses and in-flight hits before the response depends on them; hits written behind by
``orchestrator.writebehind``), GPU calls through ``JobRunner``, futures that waiting requests
share, events and metrics. A cache hit never touches the database on the request path.

Ordering rules that keep the tables right while jobs and requests interleave:

- every write about one chunk row (a miss's claim, a job's claim and attempt row, a cancelled
  job's status) is made under that chunk's lock, and a cancelled job marks its row cancelled
  only if the live state still has nobody wanting the chunk;
- a waiter is always answered before anything is persisted about the job's end, so a database
  fault can never leave a request hanging (issue 12); those writes are retried in the background.

One scheduler process owns a database: start-up recovery assumes no other process runs jobs.
With API replicas (issue 16) that one is elected by ``orchestrator.leader``; replicas' requests
reach it through ``orchestrator.intake``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from gpu.protocol import GpuPool
from orchestrator import live_store
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import Budget, NodeState, SessionView, Timing
from orchestrator.db import Database
from orchestrator.events import EventBus
from orchestrator.experiments import Arm
from orchestrator.idcache import IdCache
from orchestrator.job_tasks import JobTasks
from orchestrator.jobs import GenerationFailed, JobRunner
from orchestrator.live import KnownNode, LiveState, Resolution
from orchestrator.metrics import Metrics
from orchestrator.plan_slices import PlanPacer, sliced_plan
from orchestrator.policy_host import PolicyHost
from orchestrator.scheduler_types import SchedulerConfig, ServedChunk
from orchestrator.storage import BlobStore
from orchestrator.writebehind import WriteBehind

__all__ = ["Scheduler", "SchedulerConfig", "ServedChunk"]

log = structlog.get_logger(__name__)

_TICK_S = 1.0  # re-plan at least this often: idle timeouts and the bucket move with time
_COALESCE_S = 0.05  # wake-ups within this window share one plan (small against any G)


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


class Scheduler:
    """Owns the live state and every GPU job. Create, ``await start()``, ``await close()``."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        pool: GpuPool,
        profile: GenerationProfile,
        config: SchedulerConfig,
        *,
        demand_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
        events: EventBus | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db, self.pool, self.profile, self.config, self.clock = (
            db, pool, profile, config, clock)  # fmt: skip
        self.events = events or EventBus()
        self.metrics = metrics or Metrics()
        self.policies = PolicyHost(config.arms, config.experiment)
        self.live = LiveState(
            budget=self._budget(config), timing=self._timing(config, None),
            frames=profile.frames, proposer=self.policies,
            new_chunk_id=lambda _key: str(uuid.uuid4()), new_job_id=lambda: str(uuid.uuid4()),
            seed=config.seed, learn_gpu_time=config.expected_gpu_s is None,
            evict_after_s=config.evict_after_s, profile_key=profile.key(),
        )  # fmt: skip
        self.live.bucket = replace(self.live.bucket, updated_at=clock())
        self.writer = WriteBehind(db)
        self.ids = IdCache()  # the hit path's id conversions (orchestrator.idcache)
        runner = JobRunner(db, store, pool, profile, demand_retries=demand_retries,
                           usd_per_gpu_s=config.usd_per_gpu_s)  # fmt: skip
        self.jobs = JobTasks(db, runner, self.live, self.events, self.metrics, clock,
                             on_end=self.wake, usd_per_gpu_s=config.usd_per_gpu_s)  # fmt: skip
        self._latest: dict[str, uuid.UUID] = {}  # memory id -> its newest session
        self._loading: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())  # fmt: skip
        self.pacer = PlanPacer(_TICK_S, _COALESCE_S)
        self._planner: asyncio.Task[None] | None = None
        self.accepted = 0  # waiting requests made durable so far (harnesses wait on it)
        self.plan_busy_s = 0.0  # seconds the last plan kept the loop (or the GIL) busy
        # Warm idle containers now, for cold-start-aware admission; None: unknown (every start
        # is valued warm). The service sets it from the warm-pool loop on Modal.
        self.warm_idle: Callable[[], int | None] = lambda: None

    def _budget(self, config: SchedulerConfig) -> Budget:
        return replace(config.budget, max_containers=self.pool.slots)

    def _timing(self, config: SchedulerConfig, learned: float | None) -> Timing:
        g = config.expected_gpu_s or learned or 30.0
        return Timing(gpu_s_per_chunk=g, cold_start_s=config.cold_start_s,
                      chunk_duration_s=self.profile.duration_s, think_s=config.think_s)  # fmt: skip

    def wake(self) -> None:
        """Plan soon (something a plan reads changed outside ``request_chunk``: issue 16)."""
        self.pacer.wake()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, planner: bool = True) -> None:
        """Recover work a previous process left behind, then start writing and (unless
        ``planner`` is False: a harness then calls ``plan_once`` itself) planning."""
        self.writer.start()
        interrupted, pending = await live_store.interrupted_work(self.db)
        now = self.clock()
        for p in pending:
            if await self.ensure_memory(p.memory_id):
                self.live.resume(str(p.memory_id), str(p.chunk_id),
                                 str(p.session_id) if p.session_id else None, now)  # fmt: skip
                if p.call_id is not None:
                    self.jobs.resume_calls[str(p.chunk_id)] = p.call_id
        if interrupted or pending:
            log.info("recovered", interrupted=interrupted, resubmitted=len(pending))
        if planner:
            self._planner = asyncio.create_task(self._plan_loop(), name="rewind-planner")
            self.pacer.wake()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop planning, interrupt running jobs (resumed by the next start), flush writes;
        bounded by ``timeout_s`` seconds whatever the database does."""
        if self._planner is not None:
            self._planner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._planner
        detach = getattr(self.pool, "detach", None)
        if detach is not None:
            detach()  # remote calls keep running: the next start re-attaches to them
        await self.jobs.close(timeout_s / 2)
        await self.writer.close(timeout_s / 2)

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Apply new arms/policies/budget to the next decisions; running jobs are kept.

        Sessions keep their arm; one whose arm was removed joins an arm of the new
        configuration. Raises ValueError (and changes nothing) on an unknown policy.
        """
        self.policies.reconfigure(config.arms, config.experiment)
        learned = self.live.timing.gpu_s_per_chunk if self.live.learn_gpu_time else None
        self.config = config
        self.jobs.usd_per_gpu_s = self.jobs.runner.usd_per_gpu_s = config.usd_per_gpu_s
        self.live.configure(budget=self._budget(config), timing=self._timing(config, learned))
        self.live.learn_gpu_time = config.expected_gpu_s is None
        for s in list(self.live.sessions()):
            arm = self.policies.arm(s.arm) or self.policies.assign(uuid.UUID(s.view.session_id))
            self.live.set_arm(s.view.session_id, arm.name, arm.policy)
        self.pacer.wake()

    # ---- memories and sessions ---------------------------------------------------------------

    async def ensure_memory(self, memory_id: uuid.UUID) -> bool:
        """Load the memory's tree into the live state if needed; False if there is none."""
        key = self.ids.text(memory_id)
        if self.live.has_memory(key):
            return True
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            return await live_store.load_memory(self.db, self.live, memory_id)

    async def open_session(
        self, session_id: uuid.UUID, memory_id: uuid.UUID, cursor: uuid.UUID,
        arm: str | None = None,
    ) -> Arm:  # fmt: skip
        """Register a live session (rows are the caller's) whose cursor is ``cursor``.

        ``arm`` is the session's recorded arm; None (a new session) or an arm that no longer
        exists assigns one. Returns the session's arm. Raises LookupError: no such memory.
        """
        if not await self.ensure_memory(memory_id):
            raise LookupError(f"no memory {memory_id}")
        chosen = (self.policies.arm(arm) if arm else None) or self.policies.assign(session_id)
        self.live.open_session(str(session_id), str(memory_id), str(cursor),
                               policy=chosen.policy, arm=chosen.name, now=self.clock())  # fmt: skip
        self._latest[str(memory_id)] = session_id
        self.pacer.wake()
        return chosen

    async def resolve_session(
        self, memory_id: uuid.UUID, session_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        """The live session a request on ``memory_id`` belongs to, loading it after a restart
        or an eviction; ``None`` picks the memory's newest session (seed clients send none).

        Raises:
            LookupError: the session is unknown or belongs to another memory.
        """
        if session_id is None:
            latest = self._latest.get(str(memory_id))
            session_id = latest or await live_store.latest_session(self.db, memory_id)
            if session_id is None:
                return None
        live = self.live.session(self.ids.text(session_id))
        if live is not None:
            if live.view.memory_id != self.ids.text(memory_id):
                raise LookupError(f"no session {session_id} on memory {memory_id}")
            return session_id
        row = await live_store.stored_session(self.db, session_id)
        if row is None or row.memory_id != memory_id:
            raise LookupError(f"no session {session_id} on memory {memory_id}")
        if row.cursor is not None:
            await self.open_session(session_id, memory_id, row.cursor, row.arm)
        return session_id

    async def session(self, session_id: uuid.UUID) -> SessionView | None:
        """The live session's view (loaded from the database if needed); None if unknown."""
        live = self.live.session(str(session_id))
        if live is None:
            row = await live_store.stored_session(self.db, session_id)
            if row is None or row.cursor is None:
                return None
            await self.open_session(session_id, row.memory_id, row.cursor, row.arm)
            live = self.live.session(str(session_id))
        return live.view if live is not None else None

    def node(self, memory_id: uuid.UUID, chunk_id: uuid.UUID) -> KnownNode | None:
        """A known chunk of a loaded memory (``state``, ``depth``), or None."""
        return self.live.node(self.ids.text(memory_id), self.ids.text(chunk_id))

    async def refresh_node(self, memory_id: uuid.UUID, chunk_id: uuid.UUID) -> KnownNode | None:
        """As ``node``: here the live state is ahead of the database (an API replica's view
        re-reads it instead)."""
        return self.node(memory_id, chunk_id)

    def session_arm(self, session_id: uuid.UUID) -> tuple[str, str]:
        """(policy, arm) of a live session. Raises KeyError if it is not live."""
        s = self.live.session(str(session_id))
        if s is None:
            raise KeyError(str(session_id))
        return s.view.policy, s.arm

    # ---- requests ----------------------------------------------------------------------------

    async def request_chunk(
        self, *, memory_id: uuid.UUID, parent_id: uuid.UUID | None, pose: str,
        action: str | None, session_id: uuid.UUID | None, record_history: bool = True,
        request_id: uuid.UUID | None = None, waited_s: float = 0.0,
    ) -> ServedChunk:  # fmt: skip
        """Serve chunk key (memory, parent, pose); wait until it is ready unless it is a hit.

        The caller has loaded the memory (``ensure_memory``) and checked that the parent is a
        ready chunk of it (``node``). ``request_id`` / ``waited_s`` (seconds already waited)
        come from an API replica's demand row (``orchestrator.intake``); by default a new id and
        0. Raises GenerationFailed (502 with the job id) when generation fails; asyncpg /
        OSError errors when a miss cannot be made durable.
        """
        t0, request_id, text = self.clock() - waited_s, request_id or uuid.uuid4(), self.ids.text
        res = self.live.request(
            text(memory_id), text(parent_id) if parent_id else None, pose, action,
            request_id=str(request_id), session_id=text(session_id) if session_id else None,
            now=t0, record_history=record_history,
        )  # fmt: skip
        args = (res, request_id, memory_id, parent_id, pose, action, session_id)
        if res.outcome == "hit":
            self.pacer.hit()  # nobody waits on the plan a hit asks for
            self._record_hit(*args)
            return self._answer(res, request_id, memory_id, parent_id, pose, action, 0.0,
                                res.job_id)  # fmt: skip
        self.pacer.wake()
        waiter = self.jobs.waiter(res.chunk_id)
        job_id = await self._record_wait(*args)
        try:
            await asyncio.shield(waiter)
        except GenerationFailed as exc:
            self.writer.served(request_id, None, str(exc))
            raise
        wait_ms = (self.clock() - t0) * 1000.0
        self.writer.served(request_id, wait_ms, None)
        if job_id is None:
            made = self.live.producer(str(memory_id), res.chunk_id)
            job_id = made.job_id if made is not None else None
        return self._answer(res, request_id, memory_id, parent_id, pose, action, wait_ms, job_id)

    def _record_hit(
        self, res: Resolution, request_id: uuid.UUID, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None, session_id: uuid.UUID | None,
    ) -> None:  # fmt: skip
        chunk_id, job_id = self.ids.parse(res.chunk_id), self.ids.parse_opt(res.job_id)
        self.writer.hit(
            request_id, session_id=session_id, memory_id=memory_id, parent_id=parent_id,
            chunk_id=chunk_id, job_id=job_id, pose=pose, action=action, policy=res.policy,
            arm=res.arm, depth=res.speculated_depth, probability=res.speculated_probability,
            at=datetime.now(UTC),
        )  # fmt: skip
        if session_id is not None:
            self.writer.move(session_id, chunk_id, hit=True)
        if res.mark_used and job_id is not None:
            self.writer.used(job_id, hit=True)

    async def _record_wait(
        self, res: Resolution, request_id: uuid.UUID, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None, session_id: uuid.UUID | None,
    ) -> str | None:  # fmt: skip
        """Make a miss / in-flight hit durable (claim, promotion, request row, cursor move);
        returns the id of the attempt running it, if one is."""
        chunk_id = uuid.UUID(res.chunk_id)
        job_id = await self.jobs.persist_request(res, memory_id, parent_id, pose, action)
        self.writer.request(
            request_id, session_id=session_id, memory_id=memory_id, parent_id=parent_id,
            chunk_id=chunk_id, job_id=_uuid(job_id), pose=pose, action=action,
            outcome=res.outcome, policy=res.policy, arm=res.arm, depth=res.speculated_depth,
            probability=res.speculated_probability,
        )  # fmt: skip
        if session_id is not None:
            self.writer.move(session_id, chunk_id, hit=False)
        await self.writer.flush()
        self.accepted += 1
        return job_id

    def _answer(
        self, res: Resolution, request_id: uuid.UUID, memory_id: uuid.UUID,
        parent_id: uuid.UUID | None, pose: str, action: str | None, wait_ms: float,
        job_id: str | None,
    ) -> ServedChunk:  # fmt: skip
        self.metrics.served(res.outcome, res.policy or "", res.arm or "", wait_ms / 1000.0)
        mid = self.ids.text(memory_id)
        self.events.publish(mid, "chunk_served", chunk_id=res.chunk_id, outcome=res.outcome,
                            wait_ms=round(wait_ms, 1))  # fmt: skip
        node = self.live.node(mid, res.chunk_id)
        return ServedChunk(
            self.ids.parse(res.chunk_id), memory_id, parent_id, pose,
            node.action if node is not None else action, res.chunk_index, res.outcome, wait_ms,
            self.ids.parse_opt(job_id), request_id,
        )  # fmt: skip

    # ---- planning ----------------------------------------------------------------------------

    async def _plan_loop(self) -> None:
        self.pacer.running = True
        while True:
            await self.pacer.wait()
            try:
                await self.plan_once()
            except Exception:
                log.exception("plan_failed")
            self.pacer.planned(self.plan_busy_s)

    async def plan_once(self) -> None:
        """One plan over the live state, carried out (starts, cancels); skipped when nothing
        a plan reads has changed (``LiveState.needs_plan``). The policies' proposals are made
        first, in slices with the loop free in between (``plan_slices``)."""
        self.plan_busy_s = 0.0
        if not self.live.needs_plan(self.clock()):
            return
        scheduled, self.plan_busy_s = await sliced_plan(self.live, self.clock, self.warm_idle())
        for cancel in scheduled.cancels:
            self.jobs.cancel(cancel)
        for start in scheduled.starts:
            self.jobs.start(start)

    # ---- introspection -----------------------------------------------------------------------

    def busy_slots(self) -> dict[str, int]:
        """GPU slots held, by job kind."""
        counts = {"demand": 0, "speculative": 0}
        for job in self.live.running():
            counts[job.kind] += 1
        return counts

    def queued_demands(self) -> int:
        """Misses waiting for a slot."""
        return len(self.live.demands())

    async def tree_states(self, memory_id: uuid.UUID) -> dict[str, NodeState]:
        """chunk id -> state (ready / running / failed) of a memory's live tree."""
        await self.ensure_memory(memory_id)
        tree = self.live.tree(str(memory_id))
        if tree is None:
            return {}
        return {n.chunk_id: n.state for n in tree if n.state != "pending"}
