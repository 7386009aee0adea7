"""``plan(inp) -> Plan``: the decision core's one entry point (pure, deterministic).

Shaped like vLLM v1's ``Scheduler.schedule()`` (DESIGN.md, "Codebases worth imitating"): one
call spends a budget over in-memory state and returns a plain ``Plan``; the shell carries it out
and reports outcomes back through the next ``PlanInput``. No I/O, no clock (``inp.now``), no
randomness; every decision iterates sorted values, so the same input (in any tuple order) gives
the same plan.

Order of work (DESIGN.md, "The decision core", "The value of a speculative chunk"):

a. Refill the token bucket to ``now`` (``budget.refill``).
b. Cancel speculative jobs no active session can reach: a job is kept while its chunk is an
   active (non-idle) session's cursor on its memory or lies at most ``budget.max_depth`` levels
   below one. Otherwise it is cancelled as "idle" (only idle sessions' cursors reach it) or
   "abandoned" (none). Demand jobs, and speculative jobs whose key a demand waits for, are never
   cancelled.
c. Trim speculation over its limits (the operator lowered the share, the pool shrank): cancel
   the least valuable speculative jobs, reason "budget", until speculative jobs <=
   ``speculative_slot_cap`` and all jobs <= ``max_containers``.
d. Demands, FIFO by (requested_at, request_id). Requests for one chunk key share one start (the
   first request's ``request_id``; the shell attaches the other waiters to it). Skipped
   defensively: a key already running (the shell should have made it an in-flight hit), already
   ready (a hit), or whose parent is not ready (the shell only accepts requests below a ready
   chunk). Each demand takes a free slot, else preempts the least valuable running speculative
   job (CancelJob "preempted"), else waits with every later demand. Demands cost no tokens.
e. Speculation: candidates (``frontier.candidates``) best score first; admit while a slot is
   free, speculative jobs < ``speculative_slot_cap``, the attributed session holds fewer than
   ``per_session_inflight`` speculative jobs (a full session is skipped, not the rest), and the
   bucket pays ``expected_gpu_s``.
f. Return ``Plan(starts=demand starts then speculative starts, cancels, bucket)``.

"Least valuable" speculative job: lowest current P (the combined P of current proposals for its
key, else the P it was admitted with), then the most recently started (it has the most work left
and the least work lost), then job id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.budget import refill, speculative_slot_cap, try_spend
from orchestrator.core.frontier import (
    Candidate,
    active_sessions,
    candidates,
    expected_gpu_s,
    interests,
)
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import (
    BucketState,
    CancelJob,
    DemandRequest,
    Plan,
    PlanInput,
    RunningJob,
    SessionView,
    StartJob,
)


def job_key(job: RunningJob) -> Key:
    """The chunk key a running job generates."""
    return (job.memory_id, job.parent_id, job.pose)


def demand_key(demand: DemandRequest) -> Key:
    """The chunk key a demand asks for."""
    return (demand.memory_id, demand.parent_id, demand.pose)


@dataclass(slots=True)
class _Work:
    """Scratch state of one ``plan()`` call."""

    inp: PlanInput
    index: TreeIndex
    valued: dict[Key, Candidate]
    live: dict[str, RunningJob]  # job_id -> job still holding its slot after this plan's cancels
    demanded: frozenset[Key]  # keys of every pending demand
    cancels: list[CancelJob] = field(default_factory=list)
    demand_starts: list[StartJob] = field(default_factory=list)
    spec_starts: list[StartJob] = field(default_factory=list)

    def free_slots(self) -> int:
        starts = len(self.demand_starts) + len(self.spec_starts)
        return self.inp.budget.max_containers - len(self.live) - starts

    def speculative(self) -> list[RunningJob]:
        """Live speculative jobs a demand may displace, by job id."""
        return [
            j
            for _, j in sorted(self.live.items())
            if j.kind == "speculative" and job_key(j) not in self.demanded
        ]

    def cancel(self, job: RunningJob, reason: str) -> None:
        del self.live[job.job_id]
        self.cancels.append(CancelJob(job_id=job.job_id, reason=reason))

    def least_valuable(self) -> RunningJob | None:
        def value(j: RunningJob) -> tuple[float, float, str]:
            c = self.valued.get(job_key(j))
            return (c.probability if c is not None else j.probability, -j.started_at, j.job_id)

        jobs = self.speculative()
        return min(jobs, key=value) if jobs else None


def _job_order(j: RunningJob) -> tuple[str, float, str]:
    return (j.job_id, j.started_at, j.chunk_id)


def _cursors(sessions: tuple[SessionView, ...]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in sessions:
        out.setdefault(s.memory_id, set()).add(s.cursor_chunk_id)
    return out


def _reachable(w: _Work, job: RunningJob, cursors: set[str]) -> bool:
    """True when the job's chunk is a cursor or at most max_depth levels below one."""
    if job.chunk_id in cursors:
        return True
    current = job.parent_id
    for _ in range(w.inp.budget.max_depth):
        if current is None:
            return False
        if current in cursors:
            return True
        node = w.index.node(current)
        current = node.parent_id if node is not None else None
    return False


def _cancel_unreachable(w: _Work, active: tuple[SessionView, ...]) -> None:
    active_ids = {s.session_id for s in active}
    idle = tuple(
        sorted(
            (s for s in w.inp.sessions if s.session_id not in active_ids),
            key=lambda s: s.session_id,
        )
    )
    by_active, by_idle = _cursors(active), _cursors(idle)
    for job in w.speculative():
        if _reachable(w, job, by_active.get(job.memory_id, set())):
            continue
        idle_reach = _reachable(w, job, by_idle.get(job.memory_id, set()))
        w.cancel(job, "idle" if idle_reach else "abandoned")


def _trim_to_limits(w: _Work) -> None:
    cap = speculative_slot_cap(w.inp.budget)
    while len(w.speculative()) > cap or len(w.live) > w.inp.budget.max_containers:
        victim = w.least_valuable()
        if victim is None:
            return
        w.cancel(victim, "budget")


def _admit_demands(w: _Work) -> None:
    running = {job_key(j) for j in w.inp.jobs}
    seen: set[Key] = set()
    for d in sorted(w.inp.demands, key=lambda d: (d.requested_at, d.request_id)):
        key = demand_key(d)
        if key in seen or key in running:
            continue
        seen.add(key)
        node = w.index.by_key(*key)
        if node is not None and node.state == "ready":
            continue
        if d.parent_id is not None and not w.index.is_ready(d.parent_id):
            continue
        reason = "demand"
        if w.free_slots() <= 0:
            victim = w.least_valuable()
            if victim is None:
                return  # FIFO: every later demand waits too
            w.cancel(victim, "preempted")
            reason = f"demand (preempted job {victim.job_id})"
        w.demand_starts.append(
            StartJob(
                memory_id=d.memory_id,
                parent_id=d.parent_id,
                pose=d.pose,
                action=d.action,
                kind="demand",
                session_id=d.session_id,
                probability=1.0,
                depth=0,
                expected_gpu_s=expected_gpu_s(w.inp.timing),
                benefit_s=0.0,
                reason=reason,
                request_id=d.request_id,
            )
        )


def _spec_start(c: Candidate) -> StartJob:
    reason = f"spec p={c.probability:.2f} d={c.depth} saves={c.benefit_s:.1f}s/gpu={c.score:.2f}"
    return StartJob(
        memory_id=c.memory_id,
        parent_id=c.parent_id,
        pose=c.pose,
        action=c.action,
        kind="speculative",
        session_id=c.session_id,
        probability=c.probability,
        depth=c.depth,
        expected_gpu_s=c.expected_gpu_s,
        benefit_s=c.benefit_s,
        reason=reason,
    )


def _admit_speculation(w: _Work, bucket: BucketState) -> BucketState:
    budget = w.inp.budget
    cap = speculative_slot_cap(budget)
    spec = [j for j in w.live.values() if j.kind == "speculative"]
    held: dict[str, int] = {}
    for j in spec:
        if j.session_id is not None:
            held[j.session_id] = held.get(j.session_id, 0) + 1
    # A key a demand waits for is the demand's to start: speculating on it would generate it twice.
    taken = {job_key(j) for j in w.inp.jobs} | set(w.demanded)
    for c in candidates(w.inp, w.index, w.valued, taken):
        if w.free_slots() <= 0 or len(spec) + len(w.spec_starts) >= cap:
            break
        if held.get(c.session_id, 0) >= budget.per_session_inflight:
            continue
        paid = try_spend(bucket, c.expected_gpu_s)
        if paid is None:
            break  # every candidate costs the same E
        bucket = paid
        held[c.session_id] = held.get(c.session_id, 0) + 1
        w.spec_starts.append(_spec_start(c))
    return bucket


def plan(inp: PlanInput) -> Plan:
    """Decide which jobs to start and cancel now (see the module docstring for the order).

    Args:
        inp: the snapshot (times in seconds, costs in GPU-seconds).

    Returns:
        A ``Plan`` whose ``starts`` are demand starts (FIFO) then speculative starts (best
        first), whose ``cancels`` only name speculative jobs, and whose ``bucket`` is the token
        bucket refilled to ``inp.now`` minus the speculative starts' expected GPU-seconds.

    Raises:
        Nothing for well-typed input: invalid proposals (unknown actions, non-finite P) are
        ignored rather than allowed to stall demand scheduling.
    """
    index = TreeIndex(inp.nodes)
    active = active_sessions(inp)
    w = _Work(
        inp=inp,
        index=index,
        valued=interests(inp, index, active),
        live={j.job_id: j for j in sorted(inp.jobs, key=_job_order)},
        demanded=frozenset(demand_key(d) for d in inp.demands),
    )
    bucket = refill(inp.bucket, inp.budget, inp.now)
    _cancel_unreachable(w, active)
    _trim_to_limits(w)
    _admit_demands(w)
    bucket = _admit_speculation(w, bucket)
    return Plan(starts=(*w.demand_starts, *w.spec_starts), cancels=tuple(w.cancels), bucket=bucket)
