"""The scheduler: the async shell around the pure decision core.

It keeps the live state (the chunk trees of memories being walked, sessions and their cursors,
generations holding GPU slots, misses waiting for a slot), turns every event into a call to
``orchestrator.core.plan.plan`` and carries out the returned plan: start jobs on the GPU pool,
cancel speculative jobs. Requests resolve their chunk key here: ready -> hit, being generated ->
in-flight hit (the job is promoted to demand), absent -> miss (a demand job). Identical concurrent
requests wait on one shared future, so they share one generation.

One orchestrator process owns a database: start-up recovery assumes no other process is running
jobs against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from gpu.protocol import GpuPool
from orchestrator import repo
from orchestrator.core.plan import plan
from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import (
    ActionObserved,
    BucketState,
    Budget,
    DemandRequest,
    NodeState,
    Outcome,
    PlanInput,
    PolicyContext,
    Proposal,
    RunningJob,
    SessionView,
    StartJob,
    Timing,
    TreeNode,
)
from orchestrator.db import Database
from orchestrator.events import EventBus
from orchestrator.experiments import Arm
from orchestrator.jobs import ActiveJob, GenerationFailed, JobRunner
from orchestrator.metrics import Metrics
from orchestrator.policy_host import PolicyHost
from orchestrator.storage import BlobStore

log = structlog.get_logger(__name__)

_TICK_S = 1.0  # re-plan at least this often: idle timeouts and the bucket move with time


@dataclass(frozen=True, slots=True)
class ServedChunk:
    """A request's answer: the ready chunk row, the outcome, the wait (ms) and the job used."""

    chunk: repo.Row
    outcome: Outcome
    wait_ms: float
    job_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _Resolution:
    """How a request is served: its outcome, the job, what to wait on, and the speculation
    (depth, probability) that prepared the chunk when a speculative job did."""

    outcome: Outcome
    job_id: uuid.UUID | None
    waiter: asyncio.Future[None] | None
    spec_depth: int | None = None
    spec_probability: float | None = None


@dataclass
class _Session:
    view: SessionView
    arm: str


@dataclass
class _Demand:
    request: DemandRequest
    chunk_id: uuid.UUID
    memory_id: uuid.UUID
    parent_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The scheduler's knobs: budget, regime estimates, policy and its parameters."""

    budget: Budget
    arms: tuple[Arm, ...]
    experiment: str
    think_s: float
    expected_gpu_s: float | None
    cold_start_s: float
    usd_per_gpu_s: float = 0.0
    seed: int = 0


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
        self.db = db
        self.store = store
        self.pool = pool
        self.profile = profile
        self.config = config
        self.clock = clock
        self.events = events or EventBus()
        self.metrics = metrics or Metrics()
        self.policies = PolicyHost(config.arms, config.experiment)
        self.runner = JobRunner(
            db,
            store,
            pool,
            profile,
            demand_retries=demand_retries,
            usd_per_gpu_s=config.usd_per_gpu_s,
        )
        self._nodes: dict[uuid.UUID, TreeNode] = {}
        self._memories: set[uuid.UUID] = set()
        self._sessions: dict[uuid.UUID, _Session] = {}
        self._jobs: dict[uuid.UUID, tuple[ActiveJob, asyncio.Task[None]]] = {}  # by chunk id
        self._demands: dict[uuid.UUID, _Demand] = {}  # by chunk id
        self._waiters: dict[uuid.UUID, asyncio.Future[None]] = {}  # by chunk id
        self._bucket = BucketState(config.budget.burst_gpu_s, clock())
        self._gpu_estimate = config.expected_gpu_s
        self._wake = asyncio.Event()
        self._planner: asyncio.Task[None] | None = None
        self._closing = False

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover work a previous process left behind, then start planning."""
        await self._recover()
        self._planner = asyncio.create_task(self._plan_loop(), name="rewind-planner")
        self._wake.set()

    async def close(self) -> None:
        """Stop planning; running jobs are interrupted and resumed by the next start."""
        self._closing = True
        if self._planner is not None:
            self._planner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._planner
        tasks = [task for _, task in self._jobs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reconfigure(self, config: SchedulerConfig) -> None:
        """Apply new arms/policies/budget to the next decisions; running jobs are kept.

        Sessions keep their arm; one whose arm was removed joins an arm of the new
        configuration. Raises ValueError (and changes nothing) on an unknown policy.
        """
        self.policies.reconfigure(config.arms, config.experiment)
        self.config = config
        self.runner.usd_per_gpu_s = config.usd_per_gpu_s
        self._gpu_estimate = config.expected_gpu_s or self._gpu_estimate
        for sid, s in self._sessions.items():
            arm = self.policies.arm(s.arm) or self.policies.assign(sid)
            s.arm = arm.name
            s.view = replace(s.view, policy=arm.policy)
        self._wake.set()

    # ---- sessions --------------------------------------------------------------------------

    async def open_session(
        self,
        session_id: uuid.UUID,
        memory_id: uuid.UUID,
        cursor: uuid.UUID,
        arm: str | None = None,
    ) -> Arm:
        """Register a live session (rows are the caller's) whose cursor is ``cursor``.

        ``arm`` is the session's recorded arm; None (a new session) or an arm that no longer
        exists assigns one. Returns the session's arm.
        """
        await self._load_memory(memory_id)
        chosen = (self.policies.arm(arm) if arm else None) or self.policies.assign(session_id)
        now = self.clock()
        view = SessionView(
            session_id=str(session_id),
            memory_id=str(memory_id),
            cursor_chunk_id=str(cursor),
            watch_started_at=now,
            last_active_at=now,
            policy=chosen.policy,
        )
        self._sessions[session_id] = _Session(view, chosen.name)
        self._wake.set()
        return chosen

    async def session(self, session_id: uuid.UUID) -> SessionView | None:
        """The live session, loading it from the database after a restart; None if unknown."""
        live = self._sessions.get(session_id)
        if live is not None:
            return live.view
        async with self.db.pool.acquire() as conn:
            row = await repo.get_session(conn, session_id)
        if row is None or row["cursor_chunk_id"] is None:
            return None
        await self.open_session(session_id, row["memory_id"], row["cursor_chunk_id"], row["arm"])
        return self._sessions[session_id].view

    def session_arm(self, session_id: uuid.UUID) -> tuple[str, str]:
        """(policy, arm) of a live session."""
        s = self._sessions[session_id]
        return s.view.policy, s.arm

    # ---- requests --------------------------------------------------------------------------

    async def request_chunk(
        self,
        *,
        memory_id: uuid.UUID,
        parent: repo.Row | None,
        pose: str,
        action: str | None,
        session_id: uuid.UUID | None,
        record_history: bool = True,
    ) -> ServedChunk:
        """Resolve a chunk key and wait until the chunk is ready.

        ``parent`` is the parent's chunks row (ready, same memory: the API checks) or None for
        the root. Raises GenerationFailed (502 with the job id) when generation fails.
        """
        t0 = self.clock()
        await self._load_memory(memory_id)
        parent_id: uuid.UUID | None = parent["id"] if parent is not None else None
        async with self.db.pool.acquire() as conn:
            row, _ = await repo.claim_chunk(
                conn,
                chunk_id=uuid.uuid4(),
                memory_id=memory_id,
                parent_id=parent_id,
                chunk_index=(parent["chunk_index"] + 1) if parent is not None else 0,
                pose=pose,
                action=action,
                profile_key=self.profile.key(),
                profile=self.profile.to_json(),
            )
        chunk_id: uuid.UUID = row["id"]
        res = await self._resolve(row, session_id, t0)
        outcome, job_id, waiter = res.outcome, res.job_id, res.waiter
        policy, arm = self.session_arm(session_id) if session_id in self._sessions else (None, None)
        request_id = uuid.uuid4()
        async with self.db.pool.acquire() as conn:
            await repo.insert_request(
                conn,
                request_id=request_id,
                session_id=session_id,
                memory_id=memory_id,
                parent_id=parent_id,
                chunk_id=chunk_id,
                job_id=job_id,
                pose=pose,
                action=action,
                outcome=outcome,
                policy=policy,
                arm=arm,
                speculated_depth=res.spec_depth,
                speculated_probability=res.spec_probability,
            )
            if job_id is not None and res.spec_depth is not None:
                await repo.mark_job_used(conn, job_id)
        if session_id is not None:
            await self._move_cursor(session_id, chunk_id, action if record_history else None)
        try:
            if waiter is not None:
                await asyncio.shield(waiter)
        except GenerationFailed as exc:
            async with self.db.pool.acquire() as conn:
                await repo.request_served(conn, request_id, None, str(exc))
            raise
        wait_ms = (self.clock() - t0) * 1000.0
        self.metrics.requests.labels(outcome=outcome, policy=policy or "", arm=arm or "").inc()
        self.metrics.wait.labels(outcome=outcome).observe(wait_ms / 1000.0)
        async with self.db.pool.acquire() as conn:
            await repo.request_served(conn, request_id, wait_ms)
            ready = await repo.get_chunk(conn, chunk_id)
        assert ready is not None and ready["status"] == "ready"
        if session_id in self._sessions:
            s = self._sessions[session_id]
            # Watching starts now; so does activity (a long wait must not make the viewer idle).
            now = self.clock()
            s.view = replace(s.view, watch_started_at=now, last_active_at=now)
        self.events.publish(
            str(memory_id),
            "chunk_served",
            chunk_id=str(chunk_id),
            outcome=outcome,
            wait_ms=round(wait_ms, 1),
        )
        return ServedChunk(ready, outcome, wait_ms, job_id)

    async def _resolve(self, row: repo.Row, session_id: uuid.UUID | None, t0: float) -> _Resolution:
        """How to serve a claimed chunk row (outcome, job, future to wait on, speculation).

        The checks after the last await are synchronous, so a job cannot finish between them:
        the chunk is then ready in ``_nodes`` (hit), held by a job (in-flight hit) or queued.
        """
        chunk_id: uuid.UUID = row["id"]
        status = row["status"]
        if status != "ready" and chunk_id not in self._jobs and chunk_id not in self._demands:
            async with self.db.pool.acquire() as conn:  # the row may be stale by now
                fresh = await repo.get_chunk(conn, chunk_id)
            status = fresh["status"] if fresh is not None else status
        node = self._nodes.get(chunk_id)
        if status == "ready" or (node is not None and node.state == "ready"):
            async with self.db.pool.acquire() as conn:
                job = await repo.latest_job_for_chunk(conn, chunk_id)
            if job is None:
                return _Resolution("hit", None, None)
            if job["initial_kind"] != "speculative":
                return _Resolution("hit", job["id"], None)
            return _Resolution("hit", job["id"], None, job["depth"], job["probability"])
        if chunk_id in self._jobs:
            active, _ = self._jobs[chunk_id]
            waiter = self._waiters[chunk_id]
            promote = active.kind == "speculative"
            active.kind = "demand"  # before any await: the planner must not cancel it now
            await active.row_written.wait()
            if promote:
                async with self.db.pool.acquire() as conn:
                    await repo.promote_job(conn, active.job_id)
            if active.initial_kind != "speculative":
                return _Resolution("inflight", active.job_id, waiter)
            return _Resolution("inflight", active.job_id, waiter, active.depth, active.probability)
        if chunk_id not in self._demands:
            self._add_demand(row, session_id, t0)
            if status in ("failed", "cancelled"):
                async with self.db.pool.acquire() as conn:
                    await repo.reclaim_chunk(conn, chunk_id)
        return _Resolution("miss", None, self._waiters[chunk_id])

    def _add_demand(self, row: repo.Row, session_id: uuid.UUID | None, now: float) -> None:
        chunk_id: uuid.UUID = row["id"]
        parent: uuid.UUID | None = row["parent_chunk_id"]
        self._demands[chunk_id] = _Demand(
            DemandRequest(
                request_id=str(chunk_id),
                memory_id=str(row["memory_id"]),
                parent_id=str(parent) if parent else None,
                pose=row["pose"],
                action=row["action"],
                session_id=str(session_id) if session_id else None,
                requested_at=now,
            ),
            chunk_id,
            row["memory_id"],
            parent,
        )
        self._waiters.setdefault(chunk_id, asyncio.get_running_loop().create_future())
        self._wake.set()

    async def _move_cursor(
        self, session_id: uuid.UUID, chunk_id: uuid.UUID, action: str | None
    ) -> None:
        async with self.db.pool.acquire() as conn:
            await repo.move_session(conn, session_id, chunk_id)
        s = self._sessions.get(session_id)
        if s is None:
            return
        now = self.clock()
        history = s.view.history
        if action is not None:
            event = ActionObserved(s.view.session_id, s.view.memory_id, history, action)
            self.policies.observe(event)
            history = (*history, action)
        s.view = replace(
            s.view,
            cursor_chunk_id=str(chunk_id),
            history=history,
            last_active_at=now,
            watch_started_at=now,
        )
        self._wake.set()

    # ---- planning --------------------------------------------------------------------------

    def timing(self) -> Timing:
        """The regime estimate the core values candidates with (seconds)."""
        return Timing(
            gpu_s_per_chunk=self._gpu_estimate or 30.0,
            cold_start_s=self.config.cold_start_s,
            chunk_duration_s=self.profile.duration_s,
            think_s=self.config.think_s,
        )

    async def _plan_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_TICK_S)
            self._wake.clear()
            try:
                await self._plan_once()
            except Exception:
                log.exception("plan_failed")

    def plan_input(self) -> PlanInput:
        """Snapshot the live state as the core's input."""
        now = self.clock()
        budget = replace(self.config.budget, max_containers=self.pool.slots)
        running = tuple(
            RunningJob(
                job_id=str(a.job_id),
                chunk_id=str(a.chunk_id),
                memory_id=str(a.memory_id),
                parent_id=str(a.parent_id) if a.parent_id else None,
                pose=a.pose,
                kind=a.kind,
                started_at=a.started_at,
                expected_gpu_s=a.expected_gpu_s,
                probability=a.probability,
                session_id=str(a.session_id) if a.session_id else None,
                depth=a.depth,
            )
            for a, _ in self._jobs.values()
        )
        return PlanInput(
            now=now,
            nodes=tuple(self._nodes.values()),
            sessions=tuple(s.view for s in self._sessions.values()),
            jobs=running,
            demands=tuple(d.request for d in self._demands.values()),
            proposals=self._proposals(now, budget),
            budget=budget,
            bucket=self._bucket,
            timing=self.timing(),
            frames=self.profile.frames,
        )

    def _proposals(self, now: float, budget: Budget) -> tuple[Proposal, ...]:
        # Index children and histories once per plan: per-session scans made this O(n^2).
        children: dict[str, dict[str, NodeState]] = defaultdict(dict)
        for n in self._nodes.values():
            if n.parent_id is not None and n.action is not None:
                children[n.parent_id][n.action] = n.state
        histories: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for o in self._sessions.values():
            histories[o.view.memory_id].append(o.view.history)
        frozen = {m: tuple(h) for m, h in histories.items()}
        out: list[Proposal] = []
        for s in self._sessions.values():
            v = s.view
            if v.policy == "none" or now - v.last_active_at > budget.idle_timeout_s:
                continue  # "none" proposes nothing by definition: skip building its context
            ctx = PolicyContext(
                session=v,
                memory_history=frozen[v.memory_id],
                children=dict(children.get(v.cursor_chunk_id, {})),
                actions=ACTION_NAMES,
                max_depth=budget.max_depth,
                now=now,
                seed=self.config.seed,
            )
            out.extend(self.policies.propose(s.arm, ctx))
        return tuple(out)

    async def _plan_once(self) -> None:
        if self._closing:
            return
        decision = plan(self.plan_input())
        self._bucket = decision.bucket
        by_job = {str(a.job_id): (a, t) for a, t in self._jobs.values()}
        for cancel in decision.cancels:
            if cancel.job_id in by_job:
                active, task = by_job[cancel.job_id]
                active.cancel_reason = cancel.reason
                task.cancel()
                self.events.publish(
                    str(active.memory_id),
                    "speculation_cancelled",
                    chunk_id=str(active.chunk_id),
                    reason=cancel.reason,
                )
        for start in decision.starts:
            await self._start(start)

    async def _start(self, start: StartJob) -> None:
        # Between popping a demand and registering the job in _jobs there is no await, so a
        # request arriving meanwhile always finds the chunk queued or running, never absent.
        if start.kind == "demand":
            assert start.request_id is not None
            demand = self._demands.pop(uuid.UUID(start.request_id), None)
            if demand is None:
                return
            job = self._new_job(demand.chunk_id, demand.memory_id, demand.parent_id, start)
            first_steps: tuple[str, ...] = ("insert",)
        else:
            job_or_none = await self._claim_speculative(start)
            if job_or_none is None:
                return
            job = job_or_none
            first_steps = ()
            if self._demands.pop(job.chunk_id, None) is not None:
                job.kind = "demand"  # a viewer asked for it while it was being claimed
                first_steps = ("promote",)
        self._waiters.setdefault(job.chunk_id, asyncio.get_running_loop().create_future())
        task = asyncio.create_task(self._run(job, first_steps), name=f"job-{job.job_id}")
        self._jobs[job.chunk_id] = (job, task)
        self._set_node(job.chunk_id, job.memory_id, job.parent_id, job.pose, job.action, "running")
        if job.kind == "speculative":
            self.events.publish(
                str(job.memory_id),
                "speculation_started",
                chunk_id=str(job.chunk_id),
                pose=job.pose,
                action=job.action,
                probability=round(job.probability, 4),
                depth=job.depth,
            )

    def _new_job(
        self,
        chunk_id: uuid.UUID,
        memory_id: uuid.UUID,
        parent_id: uuid.UUID | None,
        start: StartJob,
    ) -> ActiveJob:
        session_id = uuid.UUID(start.session_id) if start.session_id else None
        policy = arm = None
        if session_id in self._sessions:
            live = self._sessions[session_id]
            policy, arm = live.view.policy, live.arm
        return ActiveJob(
            chunk_id=chunk_id,
            memory_id=memory_id,
            parent_id=parent_id,
            pose=start.pose,
            action=start.action,
            kind=start.kind,
            session_id=session_id,
            policy=policy,
            arm=arm,
            probability=start.probability,
            depth=start.depth,
            expected_gpu_s=start.expected_gpu_s,
            started_at=self.clock(),
            initial_kind=start.kind,
        )

    async def _claim_speculative(self, start: StartJob) -> ActiveJob | None:
        memory_id = uuid.UUID(start.memory_id)
        parent_id = uuid.UUID(start.parent_id) if start.parent_id else None
        parent = self._nodes.get(parent_id) if parent_id else None
        if parent_id is not None and (parent is None or parent.state != "ready"):
            return None
        async with self.db.pool.acquire() as conn, conn.transaction():
            row, created = await repo.claim_chunk(
                conn,
                chunk_id=uuid.uuid4(),
                memory_id=memory_id,
                parent_id=parent_id,
                chunk_index=(parent.depth + 1) if parent else 0,
                pose=start.pose,
                action=start.action,
                profile_key=self.profile.key(),
                profile=self.profile.to_json(),
            )
            chunk_id: uuid.UUID = row["id"]
            if not created:
                busy = chunk_id in self._jobs or chunk_id in self._demands
                if busy or row["status"] == "ready":
                    return None
                if await repo.reclaim_chunk(conn, chunk_id) is None:
                    return None
            job = self._new_job(chunk_id, memory_id, parent_id, start)
            await self.runner.insert_attempt(conn, job)
        return job

    async def _run(self, job: ActiveJob, first_steps: tuple[str, ...] = ()) -> None:
        waiter = self._waiters[job.chunk_id]
        state: NodeState = "failed"
        requeued = False
        try:
            try:
                async with self.db.pool.acquire() as conn:
                    if "insert" in first_steps:
                        await self.runner.insert_attempt(conn, job)
                    if "promote" in first_steps:
                        await repo.promote_job(conn, job.job_id)
            finally:
                job.row_written.set()
            result, _wall_s = await self.runner.run(job)
            state = "ready"
            self._learn_gpu_time(result.gpu_seconds)
            self.metrics.gpu_seconds.labels(kind=job.initial_kind).inc(result.gpu_seconds)
            self.metrics.jobs.labels(kind=job.initial_kind, status="succeeded").inc()
            if not waiter.done():
                waiter.set_result(None)
            self.events.publish(
                str(job.memory_id),
                "chunk_ready",
                chunk_id=str(job.chunk_id),
                kind=job.kind,
                gpu_seconds=round(result.gpu_seconds, 3),
            )
        except asyncio.CancelledError:
            await self._record_cancel(job)
            if job.kind == "demand" and not self._closing:
                # Promoted by a request after the planner had cancelled it: generate it again
                # for the waiting viewer instead of failing them.
                requeued = await self._requeue(job)
            if not requeued and not waiter.done():
                waiter.set_exception(
                    GenerationFailed(str(job.job_id), str(job.chunk_id), "cancelled")
                )
                waiter.exception()  # mark retrieved: nobody may be waiting on a speculation
        except Exception as exc:
            log.warning("job_failed", job_id=str(job.job_id), error=str(exc))
            failure = (
                exc
                if isinstance(exc, GenerationFailed)
                else GenerationFailed(
                    str(job.job_id), str(job.chunk_id), f"{type(exc).__name__}: {exc}"
                )
            )
            await self._record_failure(job, str(exc))
            self.metrics.jobs.labels(kind=job.initial_kind, status="failed").inc()
            if not waiter.done():
                waiter.set_exception(failure)
                waiter.exception()
        finally:
            self._jobs.pop(job.chunk_id, None)
            if not requeued:
                self._waiters.pop(job.chunk_id, None)
            self._set_node(job.chunk_id, job.memory_id, job.parent_id, job.pose, job.action, state)
            self._wake.set()

    async def _record_cancel(self, job: ActiveJob) -> None:
        status = "cancelled"
        if self._closing and job.cancel_reason is None:
            # Shutting down: an accepted demand is resumed by the next start; a speculation
            # is simply dropped (the next planner decides again).
            if job.kind == "demand":
                status = "interrupted"
            else:
                job.cancel_reason = "shutdown"
        spent = self.clock() - job.started_at
        self.metrics.gpu_seconds.labels(kind=job.initial_kind).inc(spent)
        self.metrics.jobs.labels(kind=job.initial_kind, status=status).inc()
        if job.initial_kind == "speculative" and status == "cancelled":
            self.metrics.cancelled.labels(reason=job.cancel_reason or "unknown").inc()
        async with self.db.pool.acquire() as conn, conn.transaction():
            await repo.job_ended(
                conn,
                job.job_id,
                status,
                cancel_reason=job.cancel_reason,
                gpu_seconds=spent,
                usd_per_gpu_s=self.config.usd_per_gpu_s,
            )
            if status == "cancelled":
                await repo.set_chunk_status(conn, job.chunk_id, "cancelled")

    async def _requeue(self, job: ActiveJob) -> bool:
        async with self.db.pool.acquire() as conn:
            row = await repo.reclaim_chunk(conn, job.chunk_id)
        if row is None:
            return False
        self._add_demand(row, job.session_id, self.clock())
        return True

    async def _record_failure(self, job: ActiveJob, error: str) -> None:
        async with self.db.pool.acquire() as conn, conn.transaction():
            await repo.job_ended(
                conn,
                job.job_id,
                "failed",
                error=error,
                usd_per_gpu_s=self.config.usd_per_gpu_s,
            )
            await repo.set_chunk_status(conn, job.chunk_id, "failed")

    def _learn_gpu_time(self, gpu_seconds: float) -> None:
        if self.config.expected_gpu_s is not None:
            return
        # Exponentially weighted mean of observed generation times: the regime's G.
        prev = self._gpu_estimate
        self._gpu_estimate = gpu_seconds if prev is None else 0.7 * prev + 0.3 * gpu_seconds

    # ---- tree ------------------------------------------------------------------------------

    def _set_node(
        self,
        chunk_id: uuid.UUID,
        memory_id: uuid.UUID,
        parent_id: uuid.UUID | None,
        pose: str,
        action: str | None,
        state: NodeState,
    ) -> None:
        parent = self._nodes.get(parent_id) if parent_id else None
        self._nodes[chunk_id] = TreeNode(
            chunk_id=str(chunk_id),
            memory_id=str(memory_id),
            parent_id=str(parent_id) if parent_id else None,
            pose=pose,
            action=action,
            state=state,
            depth=(parent.depth + 1) if parent else 0,
            ready_at=self.clock() if state == "ready" else None,
        )

    async def _load_memory(self, memory_id: uuid.UUID) -> None:
        if memory_id in self._memories:
            return
        async with self.db.pool.acquire() as conn:
            rows = await repo.chunks_of_memory(conn, memory_id)
        self._memories.add(memory_id)
        for row in rows:  # by chunk_index, so parents come before children
            if row["id"] in self._nodes:
                continue
            if row["status"] == "ready":
                state: NodeState = "ready"
            elif row["id"] in self._jobs:
                state = "running"
            elif row["status"] in ("failed", "cancelled"):
                state = "failed"
            else:
                continue  # pending, waiting for a slot: the demand stands for it
            self._set_node(
                row["id"], memory_id, row["parent_chunk_id"], row["pose"], row["action"], state
            )

    async def _recover(self) -> None:
        """Resubmit what a previous process accepted but did not finish."""
        async with self.db.pool.acquire() as conn, conn.transaction():
            interrupted = await repo.interrupt_open_jobs(conn, "orchestrator restarted")
            speculative = {r["chunk_id"] for r in interrupted if r["kind"] == "speculative"}
            for chunk_id in speculative:
                await repo.set_chunk_status(conn, chunk_id, "cancelled")
            pending = await repo.pending_chunks(conn)
        now = self.clock()
        for row in pending:
            await self._load_memory(row["memory_id"])
            self._add_demand(row, row["session_id"], now)
        if interrupted or pending:
            log.info("recovered", interrupted=len(interrupted), resubmitted=len(pending))

    # ---- introspection ---------------------------------------------------------------------

    def busy_slots(self) -> dict[str, int]:
        """GPU slots held, by job kind."""
        counts = {"demand": 0, "speculative": 0}
        for active, _ in self._jobs.values():
            counts[active.kind] += 1
        return counts

    def queued_demands(self) -> int:
        """Misses waiting for a slot."""
        return len(self._demands)

    async def tree_states(self, memory_id: uuid.UUID) -> dict[str, NodeState]:
        """chunk id -> state (ready / running / failed) of a memory's live tree."""
        await self._load_memory(memory_id)
        mid = str(memory_id)
        return {str(k): n.state for k, n in self._nodes.items() if n.memory_id == mid}
