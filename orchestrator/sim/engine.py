"""The discrete-event engine: an event heap over the live state (virtual time, seconds).

The simulator is a shell like ``orchestrator.scheduler.Scheduler``: it drives the very same
``orchestrator.live.LiveState`` (request resolution, cursor moves, proposals, the core's input,
job outcomes, eviction), the same core and the same policies. Only what the service does with
hardware is simulated here: the GPU pool (``orchestrator.sim.pool``: generation times, warm
containers, scale-down, cold starts, the idle bill; ``GpuPool.warm_idle(now)`` is the count of
idle warm containers a live state can be told, as the service reads it from Modal) and the
viewers (``orchestrator.sim.trace``). What the shell adds:

- a session arrives at ``start_s``: the shell loads the memory's stored chunks into the live
  state (as the service loads them from the database) and requests the root chunk (no history);
  the sessions are taken from the trace one at a time, in arrival order (``SessionSource``: a
  ``Trace`` in memory, or a ``TraceFile`` streamed from disk): the next one is read only when the
  previous arrival is due, and a session is dropped when it ends, so the run holds the active
  sessions and one more, not the trace (``held``, ``peak_held``);
- when a request is answered the viewer watches the chunk for its duration, thinks the step's
  ``think_s`` and requests the next step; after the last step the session is closed (evicted
  once idle, as the live state evicts a viewer who left);
- after every batch of simultaneous events the live state schedules; the engine also wakes when
  ``LiveState.next_wake()`` says (a session going idle or gone, the bucket paying the cheapest
  guess it refused), and every ``regime.tick_s``; each plan is told the simulated pool's warm
  idle containers (``GpuPool.warm_idle``), as the service tells it Modal's.

What the run keeps: the metrics' ``Tally`` (``orchestrator.sim.records``), streamed as it goes
(a few bytes per request and job), and, unless ``records=False``, a ``RequestRecord`` per request
and a ``JobRecord`` per job. Besides the active sessions' state it also keeps, as the service's
database does, what it reads again of every memory a later session will arrive on (``books``,
``orchestrator.sim.books``: the ready chunks, the jobs' start times, the attempts): in RAM while
the live state holds the memory, in a spill file on disk once it has evicted it, so a trace whose
memories are visited again across all of it does not grow the replay's memory
(``benchmarks/sim_memory.py``).

Event order at equal times: job completions, arrivals and requests, wake-ups; then insertion
order. ``SimulationError``: a demand never started, or (``strict``) a plan the live state could
not carry out (stale actions: in a simulation the plan is applied as soon as it is made, so one
is a core bug) or a pool overflow.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator, Sequence

from orchestrator.core.budget import speculative_slot_cap
from orchestrator.core.frontier import expected_gpu_s
from orchestrator.core.plan import plan
from orchestrator.core.poses import ACTION_NAMES, action_to_pose
from orchestrator.core.types import BucketState, Budget
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.sim.books import MemoryBooks
from orchestrator.sim.pool import GpuPool, chunk_id
from orchestrator.sim.records import (
    JobRecord,
    RequestRecord,
    SimResult,
    SimulationError,
    Tally,
    lead_of,
)
from orchestrator.sim.regime import Regime
from orchestrator.sim.trace import SessionSource, SessionTrace
from policies import Policy

__all__ = ["JobRecord", "RequestRecord", "SimResult", "Simulation", "SimulationError"]

_DONE, _ARRIVE, _WAKE = 0, 1, 2
_EPS = 1e-6


class Simulation:
    """One policy's run over one trace in one regime. ``Simulation(...).run()`` -> ``SimResult``.

    Args:
        trace: the sessions to replay (``SessionSource``: a ``Trace``, or a ``TraceFile`` to
            stream; ``TraceError`` from reading it surfaces from ``run``).
        regime: pool, generation times, budget (``regime.budget``), valuation timing, price.
        policy: a fresh policy object (the run mutates it through ``observe``).
        seed: the world's seed (generation and cold-start times) and ``PolicyContext.seed``.
        strict: raise ``SimulationError`` on a plan the shell cannot carry out.
        cache_proposals: force the live state's proposal cache on or off; None (default) caches
            for policies that ignore time (``policies.registry.time_free``).
        records: keep a ``RequestRecord`` per request and a ``JobRecord`` per job in the result
            (default True); False keeps only the streamed ``Tally`` the metrics read, so the
            run's memory does not grow with the trace (a few bytes per request and job).
        foresee: called as ``foresee(session_id, actions)`` with each session's actions (in
            order) as the session arrives, before anything asks the policy about it: the
            ``oracle``'s future (``OraclePolicy.foresee``). None (default): the policy's own
            ``foresee`` if it has one (pass it explicitly when the policy is wrapped).
    """

    def __init__(
        self,
        trace: SessionSource,
        regime: Regime,
        policy: Policy,
        seed: int = 0,
        strict: bool = True,
        cache_proposals: bool | None = None,
        records: bool = True,
        foresee: Callable[[str, Sequence[str]], None] | None = None,
    ) -> None:
        self.trace, self.regime, self.policy, self.seed, self.strict = (
            trace, regime, policy, seed, strict)  # fmt: skip
        self.records = records
        self.foresee = foresee if foresee is not None else getattr(policy, "foresee", None)
        self.now = trace.first_start_s
        self.pool = GpuPool(regime.pool, regime.generation, seed, start_s=self.now)
        self.e = expected_gpu_s(regime.timing)
        numbers = itertools.count()
        self.live = LiveState(
            budget=regime.budget, timing=regime.timing, frames=regime.frames,
            proposer=SinglePolicy(policy, cache_proposals),
            new_chunk_id=lambda key: chunk_id(*key),
            new_job_id=lambda: f"j{next(numbers):07d}", seed=seed, evict_after_s=float("inf"),
        )  # fmt: skip
        self.live.bucket = BucketState(regime.budget.burst_gpu_s, self.now)
        self.running: dict[str, JobRecord] = {}  # chunk id -> job holding a slot
        # job id -> record: every job with ``records`` (a later hit marks it used), else those
        # holding a slot (a later hit marks the tally's job, found by the job id's number).
        self.by_job: dict[str, JobRecord] = {}
        self.jobs: list[JobRecord] = []  # with ``records`` only
        self.requests: list[RequestRecord] = []  # with ``records`` only
        self.tally = Tally()
        # request id -> (viewer, record, tally index)
        self.waiting: dict[str, tuple[SessionTrace, RequestRecord, int]] = {}
        # For the tally's lead (``metrics``): session -> when it made its requests (root first).
        self.asked: dict[str, list[float]] = {}
        self.sessions_open = self.peak_sessions = 0
        self.billed_end = float("-inf")  # the last chunk served or job ended
        self.steps: dict[str, int] = {}  # live session id -> next step index
        # Per memory across its visits, as the service's database (set up by ``run``).
        self.books = MemoryBooks({})
        self.held: dict[str, SessionTrace] = {}  # session id -> trace, arrival pushed to end
        self.peak_held = 0
        self._arrivals: Iterator[SessionTrace] = iter(())
        self._arrival_seq = 0
        self.heap: list[tuple[float, int, int, str]] = []
        self.seq = 0
        self.plans = self.peak_running = self.peak_spec = 0
        self.spec_running = 0  # jobs of ``running`` whose kind is speculative
        self._cap: tuple[Budget | None, int] = (None, 0)  # (budget, its speculative slot cap)
        # The latest moment a session was active (opened, asked, or answered): a session is
        # active now iff ``now - last_active <= idle_timeout_s`` for the latest one, and an
        # evicted session was quiet longer than that (``_schedule_wakes``).
        self.last_active = float("-inf")
        self.viewing_s = self.plan_wall = self.propose_wall = 0.0
        self.bucket_wake = self.tick_wake = float("-inf")
        self.root_pose = regime.root_pose
        self.poses = {a: str(action_to_pose(a, regime.frames)) for a in ACTION_NAMES}

    @property
    def budget(self) -> Budget:
        """The budget the live state plans with."""
        return self.live.budget

    @property
    def bucket(self) -> BucketState:
        """The live state's token bucket."""
        return self.live.bucket

    def _push(self, at: float, kind: int, ref: str) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, kind, self.seq, ref))

    def _next_arrival(self) -> None:
        """Take the next session from the trace and put its arrival on the heap. Arrivals are
        numbered 1..N in arrival order and every other event after N (``run``), as if all were
        pushed first: the heap pops the same events in the same order as with the whole trace
        on it, since the earliest arrival not yet due is always there."""
        trace = next(self._arrivals, None)
        if trace is not None:
            self._arrival_seq += 1
            self.held[trace.session_id] = trace
            self.peak_held = max(self.peak_held, len(self.held))
            heapq.heappush(self.heap, (trace.start_s, _ARRIVE, self._arrival_seq,
                                       "a:" + trace.session_id))  # fmt: skip

    def run(self) -> SimResult:
        """Replay the whole trace; returns when no event is left (every job ended).

        Raises:
            SimulationError: as the class doc. TraceError: a ``TraceFile`` that cannot be read.
        """
        self.books = books = MemoryBooks(self.trace.arrivals_per_memory())
        self.seq = self.trace.session_count  # the arrivals' numbers come first
        self._arrivals = self.trace.in_arrival_order()
        self._next_arrival()
        traces = self.held
        heap, pop, by_job = self.heap, heapq.heappop, self.by_job
        while heap:
            now = self.now = heap[0][0]
            while heap and heap[0][0] == now:
                _, kind, _, ref = pop(heap)
                if kind == _DONE:
                    job = by_job.get(ref)  # without records a cancelled job has left
                    if job is not None:
                        self._job_done(job)
                elif kind == _ARRIVE:  # "r:<session>" (a step) or "a:<session>" (an arrival)
                    if ref.startswith("r:"):
                        self._request_step(traces[ref[2:]])
                    else:
                        self._arrive(traces[ref[2:]])
                        self._next_arrival()
            self._plan()
            self._spill_evicted()
            if self.sessions_open > self.peak_sessions:
                self.peak_sessions = self.sessions_open
        if self.live.demands():  # with no event left, a waiting demand would wait forever
            raise SimulationError(f"demands never started: {self.live.demands()[:3]}")
        # The bill ends with the last chunk served or job ended, not with the last idle wake-up.
        billed_end = self.billed_end if self.billed_end > float("-inf") else self.now
        idle_gpu_s = self.pool.close(billed_end)
        books.close()
        return SimResult(
            policy=self.policy.name, requests=tuple(self.requests), jobs=tuple(self.jobs),
            viewing_s=self.viewing_s, end_s=self.now, plans=self.plans,
            peak_running=self.peak_running, peak_speculative=self.peak_spec,
            cold_starts=self.pool.cold_starts, plan_wall_s=self.plan_wall,
            propose_wall_s=self.propose_wall, idle_gpu_s=idle_gpu_s, billed_end_s=billed_end,
            tally=self.tally, peak_sessions=self.peak_sessions,
        )  # fmt: skip

    # ---- viewers -----------------------------------------------------------------------------

    def _arrive(self, trace: SessionTrace) -> None:
        memory = trace.memory
        if self.foresee is not None:
            self.foresee(trace.session_id, [step.action for step in trace.steps])
        self.books.arrive(memory, self.live)
        root = chunk_id(memory, None, self.root_pose)
        self.live.open_session(trace.session_id, memory, root, policy=self.policy.name,
                               arm=self.policy.name, now=self.now)  # fmt: skip
        self.steps[trace.session_id] = 0
        self.sessions_open += 1
        self.asked[trace.session_id] = []
        self._request(trace, None, self.root_pose, self.regime.root_action, -1)

    def _request_step(self, trace: SessionTrace) -> None:
        step = self.steps[trace.session_id]
        self.steps[trace.session_id] = step + 1
        action = trace.steps[step].action
        session = self.live.session(trace.session_id)
        assert session is not None
        self._request(trace, session.view.cursor_chunk_id, self.poses[action], action, step)

    def _request(
        self, trace: SessionTrace, parent: str | None, pose: str, action: str, step: int
    ) -> None:
        request_id = f"{trace.session_id}/{step}"
        res = self.live.request(
            trace.memory, parent, pose, action, request_id=request_id,
            session_id=trace.session_id, now=self.now, record_history=step >= 0,
        )  # fmt: skip
        self.last_active = self.now  # opened (the root) or asked: active now
        if res.job_id is not None:
            job = self.by_job.get(res.job_id)
            if job is not None:
                job.used = job.used or res.mark_used
                if res.promote:
                    if job.kind == "speculative" and job.ended_at is None:
                        self.spec_running -= 1
                    job.kind = "demand"
            if res.mark_used:
                self.tally.used(int(res.job_id[1:]))  # the engine's ids number the jobs
        record = RequestRecord(trace.session_id, trace.memory, step, res.chunk_id, self.now,
                               res.outcome)  # fmt: skip
        if self.records:
            self.requests.append(record)
        index = self.tally.request(step, res.outcome)
        self.asked[trace.session_id].append(self.now)
        self._push(self.now + self.budget.idle_timeout_s + _EPS, _WAKE, "idle")
        if res.outcome == "hit":
            self._serve(trace, record, index)
        else:
            self.waiting[request_id] = (trace, record, index)

    def _serve(self, trace: SessionTrace, record: RequestRecord, index: int) -> None:
        record.served_at = self.now
        self.billed_end = max(self.billed_end, self.now)
        self.tally.served(index, self.now - record.requested_at)
        if record.step >= 0:  # the lead (``metrics``) of a trace step
            started = self.books.started_at(record.memory_id, record.chunk_id)
            if started is not None:
                asked, step = self.asked[record.session_id], record.step
                two_back = asked[step - 1] if step >= 1 else None  # asked[0] is the root's
                self.tally.lead[lead_of(started, record.requested_at, asked[0], two_back)] += 1
        duration = self.regime.chunk_duration_s
        self.viewing_s += duration
        step = self.steps[trace.session_id]
        if step < len(trace.steps):
            think = trace.steps[step].think_s
            self._push(self.now + duration + think, _ARRIVE, "r:" + trace.session_id)
        else:
            del self.steps[trace.session_id]  # the viewer is done: keep state flat
            del self.asked[trace.session_id]
            del self.held[trace.session_id]
            self.live.close_session(trace.session_id)
            self.sessions_open -= 1
            self.books.leave(trace.memory)

    def _spill_evicted(self) -> None:
        """The books of quiet memories the live state has evicted go to disk, as the service's
        database keeps them: the replay holds the memories in use, not all it has seen."""
        self.books.spill_evicted(self.live)

    # ---- the simulated pool ------------------------------------------------------------------

    def _job_done(self, job: JobRecord) -> None:
        if job.ended_at is not None:
            return  # cancelled earlier; this completion never happens
        self._release(job)
        self.books.completed(job)
        ended = self.live.job_ended(job.job_id, job.chunk_id, job.memory_id, ok=True,
                                    now=self.now, gpu_s=job.gpu_s)  # fmt: skip
        self.books.keep(job, self.live)
        if ended.requests:
            self.last_active = self.now  # answered: their sessions are active now
        for request_id in ended.requests:
            trace, record, index = self.waiting.pop(request_id)
            self._serve(trace, record, index)

    def _release(self, job: JobRecord) -> None:
        job.ended_at = self.now
        del self.running[job.chunk_id]
        if job.kind == "speculative":
            self.spec_running -= 1
        if not self.records:
            del self.by_job[job.job_id]
        self.tally.ended(int(job.job_id[1:]), job.gpu_s, job.cancel_reason)
        self.billed_end = max(self.billed_end, self.now)
        self.pool.release(self.now, job.started_at + job.startup_s)

    def _fail(self, problem: str) -> None:
        if self.strict:
            raise SimulationError(f"t={self.now:.3f}: {problem}")

    def _plan(self) -> None:
        if not self.live.needs_plan(self.now):
            return  # nothing changed that a plan reads: it would repeat the last one
        t0 = time.perf_counter()
        inp = self.live.prepare(self.now, warm_idle=self.pool.warm_idle(self.now))
        t1 = time.perf_counter()
        decision = plan(inp)
        self.plan_wall += time.perf_counter() - t1
        self.propose_wall += t1 - t0
        scheduled = self.live.apply(decision, self.now)
        self.plans += 1
        if scheduled.stale:
            self._fail(f"{scheduled.stale} plan action(s) the live state could not carry out "
                       f"(e.g. a start below a non-ready parent): {decision}")  # fmt: skip
        for cancel in scheduled.cancels:
            job = self.by_job[cancel.job_id]
            job.cancel_reason = cancel.reason
            self._release(job)
        for start in scheduled.starts:
            self._start(start.job.job_id, start.job.chunk_id, start.job.memory_id,
                        start.job.initial_kind, start.job.session_id, start.job.depth,
                        start.job.probability, start.job.expected_gpu_s)  # fmt: skip
        spec = self.spec_running
        self.peak_running = max(self.peak_running, len(self.running))
        self.peak_spec = max(self.peak_spec, spec)
        if len(self.running) > self.budget.max_containers:
            self._fail(f"{len(self.running)} jobs running > {self.budget.max_containers} slots")
        if spec > self._spec_cap():
            self._fail(f"{spec} speculative jobs over the cap")
        self._schedule_wakes()

    def _spec_cap(self) -> int:
        """``speculative_slot_cap`` of the live state's budget (computed once per budget)."""
        budget = self.live.budget
        if self._cap[0] is not budget:
            self._cap = (budget, speculative_slot_cap(budget))
        return self._cap[1]

    def _start(
        self, job_id: str, cid: str, memory: str, kind: str, session: str | None, depth: int,
        probability: float, expected: float,
    ) -> None:  # fmt: skip
        attempt = self.books.attempt(memory, cid)
        try:
            startup, cold = self.pool.acquire(self.now, cid, attempt)
        except RuntimeError as err:
            raise SimulationError(f"t={self.now:.3f}: {err}") from err
        # Positional: once per job start (keywords cost a third more).
        job = JobRecord(
            job_id, cid, memory, kind, kind, session, depth,  # type: ignore[arg-type]
            probability, self.now, startup, self.pool.generation_s(cid), cold, expected,
        )  # fmt: skip
        if self.records:
            self.jobs.append(job)
        if self.tally.job(job.initial_kind, startup, cold) != int(job_id[1:]):
            raise SimulationError(f"job id {job_id} does not number the jobs in start order")
        self.by_job[job_id] = job
        self.running[cid] = job
        if kind == "speculative":
            self.spec_running += 1
        self._push(job.ends_at, _DONE, job_id)

    def _schedule_wakes(self) -> None:
        now, idle_s = self.now, self.budget.idle_timeout_s
        # Some live session active (``now - last_active_at <= idle_s``) iff the latest active
        # one is: its ``last_active_at`` is the largest, and if it was evicted it had been
        # quiet longer than ``idle_s`` (the eviction rule), so the answer is False either way.
        # (Was a pass over every live session per plan.)
        if not now - self.last_active <= idle_s:
            return
        if self.regime.tick_s > 0 and self.tick_wake <= now:
            self.tick_wake = now + self.regime.tick_s
            self._push(self.tick_wake, _WAKE, "tick")
        # The live state knows when a plan could decide anew with no event: a viewer going idle
        # or gone (their guesses are cancelled), or the bucket paying the cheapest refused guess.
        at = self.live.next_wake()
        if now < at < float("inf") and not now < self.bucket_wake <= at + _EPS:
            self.bucket_wake = at + _EPS
            self._push(self.bucket_wake, _WAKE, "live")
