"""The discrete-event engine: replays a trace through ``orchestrator.core.plan.plan`` (sim time).

It plays ``orchestrator.scheduler.Scheduler`` (the live shell) with the GPUs replaced by the
simulated pool (``orchestrator.sim.pool``), and builds the core's input and applies plans alike:

- a session arrives at ``start_s`` with the root chunk as cursor and requests it (no history);
- a request resolves the chunk key: ready -> hit (wait 0); running -> in-flight hit (the job is
  promoted to demand; wait = its remaining time); else a miss, a ``DemandRequest`` keyed by the
  chunk id that identical requests share. The cursor then moves to the requested chunk, the policy
  observes the action, ``last_active_at`` and ``watch_started_at`` become the request time;
- when the chunk is ready the viewer is served (``watch_started_at`` = serve time, as the live
  shell does; ``last_active_at`` is *not* refreshed, as in the live shell), watches it for the
  chunk duration, thinks the step's ``think_s`` and requests the next step;
- after every batch of simultaneous events ``plan()`` runs on a ``PlanInput`` built as
  ``Scheduler.plan_input`` does; its cancels are applied (GPU-seconds accrue up to the cancel),
  then its starts (demand starts pop their request).

Differences that change no plan: proposals are not asked for sessions whose cursor is not ready
(the core drops them: a parent must be ready); a viewer who left is dropped from
``PlanInput.sessions`` once idle (the core ignores idle sessions but for labelling a cancel
"idle"); nodes are those of the listed sessions' memories. The engine also re-plans when the
bucket has refilled one job's worth, when a session goes idle, and every ``regime.tick_s``.

Event order at equal times: job completions, arrivals and requests, wake-ups; then insertion
order. ``SimulationError``: a demand never started, or (``strict``) a plan the shell cannot
carry out (cancel of a demand job, duplicate key, non-ready parent, pool overflow).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, replace

from orchestrator.core.frontier import expected_gpu_s
from orchestrator.core.plan import plan
from orchestrator.core.poses import ACTION_NAMES, action_to_pose
from orchestrator.core.types import (
    ActionObserved,
    BucketState,
    DemandRequest,
    NodeState,
    Outcome,
    PlanInput,
    PolicyContext,
    Proposal,
    RunningJob,
    SessionView,
    StartJob,
    TreeNode,
)
from orchestrator.sim import records
from orchestrator.sim.pool import GpuPool, chunk_id
from orchestrator.sim.records import JobRecord, RequestRecord, SimResult, SimulationError
from orchestrator.sim.regime import Regime
from orchestrator.sim.trace import SessionTrace, Trace
from policies import Policy

__all__ = ["JobRecord", "RequestRecord", "SimResult", "Simulation", "SimulationError"]

_DONE, _ARRIVE, _WAKE = 0, 1, 2
_EPS = 1e-6


@dataclass(slots=True)
class _Session:
    trace: SessionTrace
    view: SessionView
    next_step: int = 0
    done: bool = False


class Simulation:
    """One policy's run over one trace in one regime. ``Simulation(...).run()`` -> ``SimResult``.

    Args:
        trace: the sessions to replay.
        regime: pool, generation times, budget (``regime.budget``), valuation timing, price.
        policy: a fresh policy object (the run mutates it through ``observe``).
        seed: the world's seed (generation and cold-start times) and ``PolicyContext.seed``.
        strict: raise ``SimulationError`` on a plan the shell cannot carry out.
        cache_proposals: reuse a session's proposals while nothing a policy may read changed
            (no ``observe`` since, same cursor, history, children and memory peers; only
            ``now`` and the session's timestamps differ). Valid only for policies that ignore
            ``ctx.now`` and those timestamps; None (default) enables it for the built-ins,
            which do (``time_free``).
    """

    def __init__(
        self,
        trace: Trace,
        regime: Regime,
        policy: Policy,
        seed: int = 0,
        strict: bool = True,
        cache_proposals: bool | None = None,
    ) -> None:
        self.trace, self.regime, self.policy, self.seed, self.strict = (
            trace, regime, policy, seed, strict)  # fmt: skip
        self.budget = regime.budget
        self.pool = GpuPool(regime.pool, regime.generation, seed)
        self.e = expected_gpu_s(regime.timing)
        self.now = min((s.start_s for s in trace.sessions), default=0.0)
        self.bucket = BucketState(self.budget.burst_gpu_s, self.now)
        self.nodes: dict[str, dict[str, TreeNode]] = {}  # memory -> chunk id -> node
        self.children: dict[str, dict[str, str]] = {}  # parent chunk id -> action -> chunk id
        self.producer: dict[str, JobRecord] = {}  # chunk id -> job that made it ready
        self.running: dict[str, JobRecord] = {}  # chunk id -> job holding a slot
        self.demands: dict[str, DemandRequest] = {}  # chunk id -> waiting miss
        self.waiters: dict[str, list[tuple[_Session, RequestRecord]]] = {}
        self.sessions: dict[str, _Session] = {}  # listed in PlanInput
        self.by_memory: dict[str, list[_Session]] = {}  # every arrived session, arrival order
        self.jobs: list[JobRecord] = []
        self.by_job: dict[str, JobRecord] = {}
        self.requests: list[RequestRecord] = []
        self.attempts: dict[str, int] = {}
        self.heap: list[tuple[float, int, int, str]] = []
        self.seq = 0
        self.plans = self.peak_running = self.peak_spec = 0
        self.viewing_s = self.plan_wall = self.propose_wall = 0.0
        self.bucket_wake = self.tick_wake = float("-inf")
        self.cache_proposals = (
            records.time_free(policy) if cache_proposals is None else cache_proposals
        )
        self.proposal_cache: dict[object, list[Proposal]] = {}
        self.root_pose = regime.root_pose
        self.poses = {a: str(action_to_pose(a, regime.frames)) for a in ACTION_NAMES}

    def _push(self, at: float, kind: int, ref: str) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, ref))

    def run(self) -> SimResult:
        """Replay the whole trace; returns when no event is left (every job ended)."""
        traces = sorted(self.trace.sessions, key=lambda s: s.start_s)
        pending = {s.session_id: s for s in traces}
        for s in traces:
            self._push(s.start_s, _ARRIVE, "a:" + s.session_id)
        while self.heap:
            self.now = self.heap[0][0]
            while self.heap and self.heap[0][0] == self.now:
                _, kind, _, ref = heapq.heappop(self.heap)
                if kind == _DONE:
                    self._job_done(self.by_job[ref])
                elif ref.startswith("a:"):
                    self._arrive(pending.pop(ref[2:]))
                elif ref.startswith("r:"):
                    self._request_step(self.sessions[ref[2:]])
            self._plan()
        if self.demands:  # with no event left, a waiting demand would wait forever
            raise SimulationError(f"demands never started: {sorted(self.demands)[:3]}")
        return SimResult(
            policy=self.policy.name, requests=tuple(self.requests), jobs=tuple(self.jobs),
            viewing_s=self.viewing_s, end_s=self.now, plans=self.plans,
            peak_running=self.peak_running, peak_speculative=self.peak_spec,
            cold_starts=self.pool.cold_starts, plan_wall_s=self.plan_wall,
            propose_wall_s=self.propose_wall,
        )  # fmt: skip

    # ---- sessions and requests (Scheduler.open_session / request_chunk) --------------------

    def _arrive(self, trace: SessionTrace) -> None:
        root = chunk_id(trace.memory, None, self.root_pose)
        view = SessionView(
            session_id=trace.session_id, memory_id=trace.memory, cursor_chunk_id=root,
            watch_started_at=self.now, last_active_at=self.now, policy=self.policy.name,
        )  # fmt: skip
        session = _Session(trace, view)
        self.sessions[trace.session_id] = session
        self.by_memory.setdefault(trace.memory, []).append(session)
        self.nodes.setdefault(trace.memory, {})
        self._request(session, None, self.root_pose, self.regime.root_action, -1)

    def _request_step(self, s: _Session) -> None:
        action = s.trace.steps[s.next_step].action
        s.next_step += 1
        self._request(s, s.view.cursor_chunk_id, self.poses[action], action, s.next_step - 1)

    def _request(self, s: _Session, parent: str | None, pose: str, action: str, step: int) -> None:
        memory, now = s.trace.memory, self.now
        cid = chunk_id(memory, parent, pose)
        node = self.nodes[memory].get(cid)
        outcome: Outcome
        if node is not None and node.state == "ready":
            outcome = "hit"
            made_by = self.producer.get(cid)
            if made_by is not None and made_by.initial_kind == "speculative":
                made_by.used = True
        elif cid in self.running:
            outcome = "inflight"
            job = self.running[cid]
            job.kind = "demand"
            job.used = job.used or job.initial_kind == "speculative"
        else:
            outcome = "miss"
            if cid not in self.demands:
                self.demands[cid] = DemandRequest(
                    request_id=cid, memory_id=memory, parent_id=parent, pose=pose,
                    action=action, session_id=s.view.session_id, requested_at=now,
                )  # fmt: skip
        record = RequestRecord(s.view.session_id, memory, step, cid, now, outcome)
        self.requests.append(record)
        history = s.view.history
        if step >= 0:  # the root is requested with record_history=False
            event = ActionObserved(s.view.session_id, memory, history, action)
            self.policy.observe(event)
            self.proposal_cache.clear()  # the policy may have learned: every answer may change
            history = (*history, action)
        s.view = replace(
            s.view, cursor_chunk_id=cid, history=history, last_active_at=now,
            watch_started_at=now,
        )  # fmt: skip
        self._push(now + self.budget.idle_timeout_s + _EPS, _WAKE, "idle")
        if outcome == "hit":
            self._serve(s, record)
        else:
            self.waiters.setdefault(cid, []).append((s, record))

    def _serve(self, s: _Session, record: RequestRecord) -> None:
        now = self.now
        record.served_at = now
        s.view = replace(s.view, watch_started_at=now)
        duration = self.regime.chunk_duration_s
        self.viewing_s += duration
        if s.next_step < len(s.trace.steps):
            think = s.trace.steps[s.next_step].think_s
            self._push(now + duration + think, _ARRIVE, "r:" + s.view.session_id)
        else:
            s.done = True

    # ---- jobs ------------------------------------------------------------------------------

    def _set_node(self, memory: str, cid: str, parent: str | None, pose: str, action: str,
                  state: NodeState) -> None:  # fmt: skip
        nodes = self.nodes[memory]
        depth = nodes[parent].depth + 1 if parent is not None and parent in nodes else 0
        ready_at = self.now if state == "ready" else None
        nodes[cid] = TreeNode(cid, memory, parent, pose, action, state, depth, ready_at)
        if parent is not None:
            self.children.setdefault(parent, {})[action] = cid

    def _end(self, job: JobRecord, state: NodeState) -> None:
        """The job leaves its slot now; its chunk becomes ``state``."""
        job.ended_at = self.now
        del self.running[job.chunk_id]
        self.pool.release(self.now, job.started_at + job.startup_s)
        n = self.nodes[job.memory_id][job.chunk_id]
        self._set_node(job.memory_id, job.chunk_id, n.parent_id, n.pose, n.action or "", state)

    def _job_done(self, job: JobRecord) -> None:
        if job.ended_at is not None:
            return  # cancelled earlier; this completion never happens
        self._end(job, "ready")
        self.producer[job.chunk_id] = job
        for session, record in self.waiters.pop(job.chunk_id, []):
            self._serve(session, record)

    def _fail(self, problem: str) -> None:
        if self.strict:
            raise SimulationError(f"t={self.now:.3f}: {problem}")

    def _start(self, start: StartJob) -> None:
        memory, parent = start.memory_id, start.parent_id
        nodes = self.nodes.get(memory, {})
        cid = chunk_id(memory, parent, start.pose)
        if start.kind == "demand":
            if start.request_id is None or self.demands.pop(start.request_id, None) is None:
                return self._fail(f"demand start for unknown request {start.request_id}")
            if start.request_id != cid:
                return self._fail(f"demand start {start.request_id} names another key")
        else:
            parent_node = nodes.get(parent) if parent is not None else None
            if parent is not None and (parent_node is None or parent_node.state != "ready"):
                return self._fail(f"speculative start below non-ready parent {parent}")
            node = nodes.get(cid)
            if cid in self.running or cid in self.demands or (node and node.state == "ready"):
                return self._fail(f"speculative start of existing chunk {cid}")
        if cid in self.running:
            return self._fail(f"second job for running chunk {cid}")
        attempt = self.attempts[cid] = self.attempts.get(cid, 0) + 1
        try:
            startup, cold = self.pool.acquire(self.now, cid, attempt)
        except RuntimeError as err:
            raise SimulationError(f"t={self.now:.3f}: {err}") from err
        job = JobRecord(
            job_id=f"j{len(self.jobs):07d}", chunk_id=cid, memory_id=memory,
            initial_kind=start.kind, kind=start.kind, session_id=start.session_id,
            depth=start.depth, probability=start.probability, started_at=self.now,
            startup_s=startup, generation_s=self.pool.generation_s(cid), cold=cold,
            expected_gpu_s=start.expected_gpu_s,
        )  # fmt: skip
        self.jobs.append(job)
        self.by_job[job.job_id] = job
        self.running[cid] = job
        self._set_node(memory, cid, parent, start.pose, start.action or "", "running")
        self._push(job.ends_at, _DONE, job.job_id)

    def _cancel(self, job_id: str, reason: str) -> None:
        job = self.by_job.get(job_id)
        if job is None or job.ended_at is not None or job.kind != "speculative":
            return self._fail(f"cancel of {job_id}, which is not a running speculative job")
        job.cancel_reason = reason
        self._end(job, "failed")

    # ---- planning (Scheduler.plan_input / _proposals / _plan_once) -------------------------

    def _idle(self, view: SessionView) -> bool:
        return self.now - view.last_active_at > self.budget.idle_timeout_s

    def _proposals(self) -> tuple[Proposal, ...]:
        out: list[Proposal] = []
        histories: dict[str, tuple[tuple[str, ...], ...]] = {}
        for s in self.sessions.values():
            v = s.view
            cursor = self.nodes[v.memory_id].get(v.cursor_chunk_id)
            if self._idle(v) or cursor is None or cursor.state != "ready":
                continue
            nodes = self.nodes[v.memory_id]
            kids = self.children.get(v.cursor_chunk_id, {})
            children = {a: nodes[c].state for a, c in kids.items()}
            key = None
            if self.cache_proposals:
                peers = len(self.by_memory[v.memory_id])
                key = (v.session_id, v.cursor_chunk_id, v.history, peers, tuple(children.items()))
                cached = self.proposal_cache.get(key)
                if cached is not None:
                    out.extend(cached)
                    continue
            memory_history = histories.get(v.memory_id)
            if memory_history is None:
                memory_history = tuple(o.view.history for o in self.by_memory[v.memory_id])
                histories[v.memory_id] = memory_history
            ctx = PolicyContext(
                session=v, memory_history=memory_history, children=children,
                actions=ACTION_NAMES, max_depth=self.budget.max_depth, now=self.now,
                seed=self.seed,
            )  # fmt: skip
            proposals = self.policy.propose(ctx)
            if key is not None:
                self.proposal_cache[key] = proposals
            out.extend(proposals)
        return tuple(out)

    def plan_input(self) -> PlanInput:
        """The core's input for the current state (as ``Scheduler.plan_input``)."""
        for sid in [k for k, s in self.sessions.items() if s.done and self._idle(s.view)]:
            del self.sessions[sid]
        memories = dict.fromkeys(s.view.memory_id for s in self.sessions.values())
        t0 = time.perf_counter()
        proposals = self._proposals()
        self.propose_wall += time.perf_counter() - t0
        jobs = tuple(
            RunningJob(
                job_id=j.job_id, chunk_id=j.chunk_id, memory_id=j.memory_id,
                parent_id=self.nodes[j.memory_id][j.chunk_id].parent_id,
                pose=self.nodes[j.memory_id][j.chunk_id].pose, kind=j.kind,
                started_at=j.started_at, expected_gpu_s=j.expected_gpu_s,
                probability=j.probability, session_id=j.session_id, depth=j.depth,
            )
            for j in self.running.values()
        )  # fmt: skip
        return PlanInput(
            now=self.now,
            nodes=tuple(n for m in memories for n in self.nodes[m].values()),
            sessions=tuple(s.view for s in self.sessions.values()), jobs=jobs,
            demands=tuple(self.demands.values()), proposals=proposals, budget=self.budget,
            bucket=self.bucket, timing=self.regime.timing, frames=self.regime.frames,
        )  # fmt: skip

    def _plan(self) -> None:
        inp = self.plan_input()
        t0 = time.perf_counter()
        decision = plan(inp)
        self.plan_wall += time.perf_counter() - t0
        self.plans += 1
        self.bucket = decision.bucket
        for cancel in decision.cancels:
            self._cancel(cancel.job_id, cancel.reason)
        for start in decision.starts:
            self._start(start)
        spec = sum(1 for j in self.running.values() if j.kind == "speculative")
        self.peak_running = max(self.peak_running, len(self.running))
        self.peak_spec = max(self.peak_spec, spec)
        if len(self.running) > self.budget.max_containers:
            self._fail(f"{len(self.running)} jobs running > {self.budget.max_containers} slots")
        self._schedule_wakes()

    def _schedule_wakes(self) -> None:
        active = any(not self._idle(s.view) for s in self.sessions.values())
        if not active:
            return
        if self.regime.tick_s > 0 and self.tick_wake <= self.now:
            self.tick_wake = self.now + self.regime.tick_s
            self._push(self.tick_wake, _WAKE, "tick")
        rate, tokens = self.budget.rate_gpu_s_per_s, self.bucket.tokens
        if rate > 0 and tokens < self.e <= self.budget.burst_gpu_s:
            at = self.now + (self.e - tokens) / rate + _EPS
            if not self.now < self.bucket_wake <= at:
                self.bucket_wake = at
                self._push(at, _WAKE, "bucket")
