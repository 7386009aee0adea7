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
   "abandoned" (none), in job-id order. Demand jobs, and speculative jobs whose key a demand
   waits for, are never cancelled.
c. Trim speculation over its limits (the operator lowered the share, the pool shrank): cancel
   the least valuable speculative jobs, reason "budget", until speculative jobs <=
   ``speculative_slot_cap`` and all jobs <= ``max_containers``.
d. Demands, FIFO by (requested_at, request_id). Requests for one chunk key share one start (the
   first request's ``request_id``; the shell attaches the other waiters to it). Skipped
   defensively: a key already running (the shell should have made it an in-flight hit), already
   ready (a hit), or whose parent is not ready (the shell only accepts requests below a ready
   chunk). Each demand takes a free slot, else preempts the least valuable running speculative
   job (CancelJob "preempted"), else waits with every later demand. Demands cost no tokens.
e. Speculation: candidates (``frontier.ranked``) best score first (seconds of wait saved per
   expected wasted GPU-second, ``frontier`` module doc); admit while a slot is free,
   speculative jobs < ``speculative_slot_cap``, the attributed session holds fewer than
   ``per_session_inflight`` speculative jobs (a full session is skipped, not the rest), and the
   bucket pays the candidate's ``charge_gpu_s`` (a candidate it cannot pay is skipped: charges
   differ by lead time). Cold starts: with ``PlanInput.warm_idle`` known, the starts of this
   plan beyond it (demands first) land on cold containers; such a candidate is valued again
   with the cold start (``frontier.revalue``) and admitted only if it still clears
   ``min_benefit_per_gpu_s``.
f. Return ``Plan(starts=demand starts then speculative starts, cancels, bucket,
   bucket_short_gpu_s)``.

Refunds: every cancel in b, c and d gives the job's unspent charge back to the bucket,
``max(0, job.charge - (now - job.started_at))`` (``budget.unspent_gpu_s``), capped at
``burst_gpu_s`` (``budget.refund``); time run counts from 0 if the clock went backwards, so a
refund never exceeds the charge. Refunds land before e, so a slot and the GPU-seconds a wrong
guess did not use can go to a better guess in the same plan. The bucket stays within [0, burst].
Demand jobs are never cancelled, and never charged. (The live state refunds the whole charge
when a speculative chunk is requested: a correct guess is not waste.)

"Least valuable" speculative job: lowest current P (the combined P of current proposals for its
key, else the P it was admitted with), then the most recently started (it has the most work left
and the least work lost), then job id.

Cost. With 10^4 sessions a snapshot holds ~10^5 nodes and ~10^5 proposals, and in pure Python
touching each once is already milliseconds, so a plan only reads what can change its decisions:

- sessions: with ``PlanInput.roster`` (the shell's sessions by id and by cursor, jobs by id and
  key, speculative jobs per session, kept as they change) none: step b reads the sessions on a
  job's chunk and ancestors from the roster's cursor map and tests each one's idleness there,
  step e reads the roster's running keys and per-session counts. Without it, two passes (who
  is idle; who watches which chunk) and one over the jobs;
- nodes: with ``PlanInput.lookup`` (the shell's per-memory dicts) every read is one call and
  nothing is scanned. Without it, no index over the whole snapshot: one filtered scan fetches
  the parents of the speculative jobs and of the demands and the children of the demands'
  parents (``TreeIndex.prefetch``); each deeper level of ancestors (``max_depth`` > 2) costs
  one more;
- reachability: at most ``max_depth`` ancestors per speculative job, each a dict read;
- "least valuable": a heap, built on the first preemption or trim. Its P values come from the
  vote index when ``PlanInput.votes`` is usable (one dict read per preemptible job's key,
  ``VoteIndex.victims``; when the plan can take at most k jobs off it, trim plus one per demand,
  and k is under a quarter of the pool, only the k least valuable are kept); without it, from
  only the proposals that can name a preemptible job's key: those of sessions whose cursor is
  the key's parent or its ancestor d - 1 levels up, of length d, whose last step has the key's
  pose (noted by ``Cursors.survey`` in step b; a necessary condition, then the same resolution
  as for every proposal, ``frontier.collect_votes``). With the index, step b also checks a job's
  parent and chunk first (``Cursors.far``, one loop over the pool) and walks the ancestry of the
  other jobs only;
- speculation is skipped outright when it cannot start anything (no free slot, the speculative
  cap reached, or an empty bucket): with 10^4 sessions on a pool of tens to hundreds of slots
  that is the common case, and it saves valuing every proposal. Otherwise, with
  ``PlanInput.votes`` usable (``VoteIndex.fits``, ``safe`` and ``holds``, or with a roster
  ``holds_roster``: an identity check per session changed since its last check), candidates
  come best first from the index's lazy walk (``VoteIndex.walk``, ``admit.admit_indexed``), which
  values only the runs of equal-valued keys it must to fill the free slots: O((r + k) log r)
  for r runs valued and k keys taken, no proposal read. A start is built from its key's lead
  vote and its run's value (no ``Candidate``), and a run whose keys would all be refused
  without effect (the bucket cannot pay its charge, its cold value misses the threshold) is
  dropped after its first: a plan whose bucket is short costs one key per run.
  Without the index every proposal is resolved and valued once (full indexes over the nodes are
  built then) and candidates come off a heap best first (``frontier.ranked``).

The upkeep is the shell's, outside ``plan()``: ``Planner.prepare`` visits only the sessions its
change log says moved (``orchestrator.live.upkeep``), compares their proposals, view and cursor
subtree by identity with what they were last voted on, and only for those that moved calls
``VoteIndex.update`` (which resolves again when the signature differs, ~10-50
us with 10 proposals) and ``Roster.set_session``; jobs enter and leave the roster as they start,
are promoted and end. The index re-combines each changed key at the plan's first read of it and
orders keys only when a walk needs the order (``votes`` module doc). ``benchmarks/core.py``
times the upkeep beside ``plan()``. What is left at 10^4 sessions is proportional to the jobs,
not the sessions: one reachability check per speculative job (step b: two dict reads when a
session watches the job's chunk or parent), the P of each preemptible job when a demand needs a
slot, and the starts themselves.

Every shortcut gives the very decisions the plain algorithm gives: ``test_plan.reference_plan``
values every proposal, sorts every list and scans for the least valuable job, and must return
the same ``Plan`` on random inputs (duplicated ids, shared cursors, idle sessions, full pools).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field

from orchestrator.core.admit import admit_indexed
from orchestrator.core.budget import (
    cold_start_s,
    refill,
    refund,
    speculative_slot_cap,
    try_spend,
    unspent_gpu_s,
)
from orchestrator.core.build import new_bucket, new_cancel, new_plan, new_start_job
from orchestrator.core.cursors import Cursors, RosterCursors, Want
from orchestrator.core.frontier import (
    Candidate,
    Votes,
    active_by_id,
    collect_votes,
    probability,
    ranked,
    revalue,
    warm_gpu_s,
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
from orchestrator.core.votes import VoteIndex

_NO_KEYS: frozenset[Key] = frozenset()


def job_key(job: RunningJob) -> Key:
    """The chunk key a running job generates."""
    return (job.memory_id, job.parent_id, job.pose)


def demand_key(demand: DemandRequest) -> Key:
    """The chunk key a demand asks for."""
    return (demand.memory_id, demand.parent_id, demand.pose)


_Victim = tuple[float, float, str, RunningJob]
"""Heap entry of a preemptible job: (current P, -started_at, job_id, job)."""

"""(session id, depth, pose): that session's proposals of that depth and last pose may name a
preemptible job's key (``Cursors.survey``, ``frontier.collect_votes``)."""


@dataclass(slots=True)
class _Work:
    """Scratch state of one ``plan()`` call."""

    inp: PlanInput
    index: TreeIndex
    live: Mapping[str, RunningJob]  # job_id -> job holding a slot before this plan (read-only)
    demanded: frozenset[Key]  # keys of every pending demand
    bucket: BucketState
    spec_live: int  # live speculative jobs (those a demand waits for included)
    cap: int  # ``speculative_slot_cap(inp.budget)``
    pool: list[RunningJob]  # live speculative jobs no demand waits for: preemptible
    gone: dict[str, RunningJob] = field(default_factory=dict)  # jobs this plan cancelled
    victims: list[_Victim] | None = None  # heap over ``pool``, built on first use
    popped: int = 0  # jobs taken off ``victims``
    checked: VoteIndex | bool | None = False  # ``inp.votes`` once found usable (False: unchecked)
    want: Want = field(default_factory=set)  # what may name a pool job's key (step b)
    cancels: list[CancelJob] = field(default_factory=list)
    demand_starts: list[StartJob] = field(default_factory=list)
    spec_starts: list[StartJob] = field(default_factory=list)
    short: float | None = None  # smallest charge the bucket refused
    _active: dict[str, SessionView] | None = None

    @property
    def active(self) -> dict[str, SessionView]:
        """Non-idle sessions by id (``frontier.active_by_id``), built on first use: with a
        roster only the paths without a usable vote index need them all."""
        if self._active is None:
            self._active = active_by_id(self.inp)
        return self._active

    def any_active(self) -> bool:
        """True when some session is not idle."""
        roster = self.inp.roster
        if roster is None or self._active is not None:
            return bool(self.active)
        now, timeout = self.inp.now, self.inp.budget.idle_timeout_s
        return any(
            not now - s.last_active_at
            > (timeout if (own := s.idle_after_s) is None or timeout < own else own)
            for s in roster
        )

    def live_count(self) -> int:
        """Jobs holding a slot after this plan's cancels (before its starts)."""
        return len(self.live) - len(self.gone)

    def cold(self) -> float:
        """Cold-start seconds the next start of this plan pays (``budget.cold_start_s``)."""
        before = len(self.demand_starts) + len(self.spec_starts)
        return cold_start_s(self.inp.warm_idle, before, self.inp.timing.cold_start_s)

    def free_slots(self) -> int:
        starts = len(self.demand_starts) + len(self.spec_starts)
        return self.inp.budget.max_containers - self.live_count() - starts

    def cancel(self, job: RunningJob, reason: str) -> None:
        """Cancel a live speculative job and refund its unspent charge."""
        self.gone[job.job_id] = job
        self.spec_live -= 1
        self.cancels.append(new_cancel(job.job_id, reason))
        unspent = unspent_gpu_s(job.charge, job.started_at, self.inp.now)
        self.bucket = refund(self.bucket, self.inp.budget, unspent)

    def preemptible(self) -> int:
        """Live speculative jobs no demand waits for."""
        return len(self.pool) - self.popped

    def vote_index(self) -> VoteIndex | None:
        """``inp.votes`` when it can stand for the proposals in this plan (``VoteIndex.fits``,
        ``safe`` and ``holds``), else None; checked once. With a roster, ``holds`` compares
        the index's views with the roster's (the roster's contract: the input's sessions)."""
        if self.checked is False:
            v, inp = self.inp.votes, self.inp
            ok = v is not None and v.fits(inp) and v.safe(inp.now, warm_gpu_s(inp))
            if ok and v is not None:
                if inp.roster is not None:
                    ok = v.holds_roster(inp.roster, inp.now, inp.budget)
                else:
                    ok = v.holds(self.active)
            self.checked = v if ok else None
        return self.checked if isinstance(self.checked, VoteIndex) else None

    def least_valuable(self) -> RunningJob | None:
        """Remove and return the least valuable preemptible job (None when there is none)."""
        if self.victims is None:
            self.victims = _victim_heap(self)
        if not self.victims:
            return None
        self.popped += 1
        return heapq.heappop(self.victims)[3]


class _Taken(Collection[Key]):
    """Keys no speculation may start: the running ones (the roster's map) and the demanded."""

    __slots__ = ("_demanded", "_running")

    def __init__(self, running: Mapping[Key, int], demanded: frozenset[Key]) -> None:
        self._running, self._demanded = running, demanded

    def __contains__(self, key: object) -> bool:
        return key in self._running or key in self._demanded

    def __iter__(self) -> Iterator[Key]:
        return iter(self._running.keys() | self._demanded)

    def __len__(self) -> int:
        return len(self._running.keys() | self._demanded)


def _victim_votes(w: _Work) -> Votes:
    """Votes for the preemptible jobs' keys (read nothing else from them), without the index.

    A proposal of depth d names key (memory, parent, pose) only when its session's cursor is
    ``parent`` walked d - 1 parent links up and its last action's pose is ``pose``
    (``frontier.collect_votes`` resolves down through the key index, whose nodes the id index
    walks back up). Step b noted those (session, depth, pose) in ``w.want``: only such
    proposals are resolved.
    """
    return collect_votes(w.inp, w.index, w.active, w.want) if w.want else {}


def _victim_heap(w: _Work) -> list[_Victim]:
    if len(w.pool) <= 1:  # no ranking needed: skip valuing proposals
        return [(0.0, 0.0, j.job_id, j) for j in w.pool]
    index = w.vote_index()
    heap: list[_Victim]
    if index is not None:  # the index holds every key's combined P: one read per pool job
        # At most this many jobs are taken off the heap in the plan: the trim's (step c: it
        # stops once both limits hold, one job per cancel) and one per demand (step d).
        budget = w.inp.budget
        most = max(w.preemptible() - w.cap,
                   w.live_count() - budget.max_containers, 0) + len(w.inp.demands)  # fmt: skip
        heap = index.victims(w.pool, most if 4 * most < len(w.pool) else None)
    else:
        votes = _victim_votes(w)
        heap = []
        for j in w.pool:
            v = votes.get((j.memory_id, j.parent_id, j.pose)) if votes else None
            p = j.probability if v is None else probability(v)
            heap.append((p, -j.started_at, j.job_id, j))
    heapq.heapify(heap)
    return heap


def _chains(index: TreeIndex, jobs: list[RunningJob], depth: int) -> dict[str, list[str]]:
    """Job id -> the job's parent, grandparent, ... up to ``depth`` ids. A chain ends early at a
    root or at a node missing from the snapshot (its ancestry is unknown). Each level's nodes are
    fetched with one filtered scan."""
    chains = {
        j.job_id: [j.parent_id] if j.parent_id is not None and depth > 0 else [] for j in jobs
    }
    for level in range(1, depth):
        tips = [c for c in chains.values() if len(c) == level]
        node_of = index.reader(c[-1] for c in tips)
        for chain in tips:
            node = node_of(chain[-1])
            if node is not None and node.parent_id is not None:
                chain.append(node.parent_id)
    return chains


def _cancel_unreachable(w: _Work) -> None:
    """Step b: a job is reachable when its chunk or one of its ancestors up to ``max_depth``
    levels is a cursor on its memory (the chunk lies in that session's subtree)."""
    if not w.pool:
        return
    inp = w.inp
    depth = inp.budget.max_depth
    roster = inp.roster
    cursors: Cursors | RosterCursors = (
        Cursors(list(w.active.values())) if roster is None
        else RosterCursors(roster, inp.now, inp.budget, True)
    )  # fmt: skip
    if w.vote_index() is not None:
        # Victims are valued from the index, which needs no ``want``: a job whose chunk or
        # parent is a cursor is reachable without walking its ancestry, and one that is not
        # (``far``) only by an ancestor above its parent.
        rest = cursors.far(w.pool, depth)
        if not rest:
            return
        chains = _chains(w.index, rest, depth)
        reaches = cursors.reaches
        lost = [j for j in rest if not reaches(j, itertools.islice(chains[j.job_id], 1, None))]
    else:
        chains = _chains(w.index, w.pool, depth)
        survey = cursors.survey
        lost = [j for j in w.pool if not survey(j, chains[j.job_id], w.want)]
    if not lost:
        return
    idle = (
        Cursors([s for s in inp.sessions if s.session_id not in w.active]) if roster is None
        else RosterCursors(roster, inp.now, inp.budget, False)
    ).reaches  # fmt: skip
    for j in sorted(lost, key=lambda j: j.job_id) if len(lost) > 1 else lost:
        w.cancel(j, "idle" if idle(j, (j.chunk_id, *chains[j.job_id])) else "abandoned")
    gone = {j.job_id for j in lost}
    w.pool = [j for j in w.pool if j.job_id not in gone]


def _trim_to_limits(w: _Work) -> None:
    cap = w.cap
    while w.preemptible() > cap or w.live_count() > w.inp.budget.max_containers:
        victim = w.least_valuable()
        if victim is None:
            return
        w.cancel(victim, "budget")


def _admit_demands(w: _Work) -> None:
    if not w.inp.demands:
        return
    running: Collection[Key]
    if w.inp.roster is not None:
        running = w.inp.roster.running_keys
    else:
        parents = {key[1] for key in w.demanded}
        running = {job_key(j) for j in w.inp.jobs if j.parent_id in parents}  # those that matter
    demands = sorted(w.inp.demands, key=lambda d: (d.requested_at, d.request_id))
    existing = w.index.by_keys(w.demanded)
    e = warm_gpu_s(w.inp)
    seen: set[Key] = set()
    for d in demands:
        key = demand_key(d)
        if key in seen or key in running:
            continue
        seen.add(key)
        node = existing.get(key)
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
        cold = w.cold()
        # Positional, in the field order, through the slots (``core.build``).
        start = new_start_job(d.memory_id, d.parent_id, d.pose, d.action, "demand", d.session_id,
                              1.0, 0, e + cold, 0.0, reason, d.request_id, 0.0,
                              cold > 0.0)  # fmt: skip
        w.demand_starts.append(start)


def _spec_start(c: Candidate, cold: bool) -> StartJob:
    reason = (
        f"spec p={c.probability:.2f} d={c.depth} saves={c.benefit_s:.1f}s "
        f"waste={c.waste_gpu_s:.1f}gpu-s s/gpu={c.score:.2f}" + (" cold" if cold else "")
    )  # ``_reason``'s text
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
        charged_gpu_s=c.charge_gpu_s,
        cold=cold,
    )


def _admit_speculation(w: _Work) -> None:
    inp, budget = w.inp, w.inp.budget
    cap = w.cap
    # Nothing can start: no slot, the cap reached, or an empty bucket (every candidate that
    # saves any wait has a positive charge). Valuing the proposals would change no decision.
    if w.free_slots() <= 0 or w.spec_live >= cap or not w.bucket.tokens > 0.0:
        return
    if not inp.proposals:
        return
    index = w.vote_index()
    # Without an active session nothing is proposed. A usable index holds only active
    # sessions' votes (``PlanInput.votes``' contract), so then its walk finds nothing and the
    # test (a pass over the sessions until an active one) is left to the other paths.
    if index is None and not w.any_active():
        return
    held: dict[str, int] = {}  # session -> its speculative jobs after this plan's cancels
    base: Mapping[str, int] = held
    taken: Collection[Key]
    # A key a demand waits for is the demand's to start: speculating on it would generate it twice.
    if inp.roster is not None:
        base = inp.roster.held
        for j in w.gone.values():
            if j.session_id is not None:
                held[j.session_id] = held.get(j.session_id, base.get(j.session_id, 0)) - 1
        running = inp.roster.running_keys
        # Without demands the roster's map alone: ``in`` is a dict read, not a method call.
        taken = _Taken(running, w.demanded) if w.demanded else running
    else:
        for j in w.live.values():
            if j.kind == "speculative" and j.session_id is not None and j.job_id not in w.gone:
                held[j.session_id] = held.get(j.session_id, 0) + 1
        taken = {(j.memory_id, j.parent_id, j.pose) for j in inp.jobs} | w.demanded
    if index is not None:
        done = admit_indexed(
            inp, index, held, base, taken, w.free_slots(), cap - w.spec_live - len(w.spec_starts),
            len(w.demand_starts) + len(w.spec_starts), w.bucket.tokens, w.short,
        )  # fmt: skip
        w.spec_starts += done.starts
        w.short = done.short
        if done.starts:
            w.bucket = new_bucket(done.tokens, w.bucket.updated_at)
        return
    bucket, min_score = w.bucket, budget.min_benefit_per_gpu_s
    best = ranked(inp, w.index, collect_votes(inp, w.index, w.active), taken)
    for c in best:
        if w.free_slots() <= 0 or w.spec_live + len(w.spec_starts) >= cap:
            break
        mine = held.get(c.session_id)
        if mine is None:
            mine = base.get(c.session_id, 0)
        if mine >= budget.per_session_inflight:
            continue
        cold = w.cold()
        if cold > 0.0:
            c = revalue(c, inp, cold)
            if not c.score > min_score:
                continue  # worth it on a warm container, not worth booting one
        paid = try_spend(bucket, c.charge_gpu_s)
        if paid is None:
            if w.short is None or c.charge_gpu_s < w.short:
                w.short = c.charge_gpu_s
            continue  # a candidate with less lead time costs less: it may still fit
        bucket = paid
        held[c.session_id] = mine + 1
        w.spec_starts.append(_spec_start(c, cold > 0.0))
    w.bucket = bucket


def _live_jobs(jobs: tuple[RunningJob, ...]) -> dict[str, RunningJob]:
    """Jobs by id; of duplicated ids the last in (job_id, started_at, chunk_id) order counts."""
    live = {j.job_id: j for j in jobs}
    if len(live) != len(jobs):
        live = {
            j.job_id: j for j in sorted(jobs, key=lambda j: (j.job_id, j.started_at, j.chunk_id))
        }
    return live


def plan(inp: PlanInput) -> Plan:
    """Decide which jobs to start and cancel now (see the module docstring for the order).

    Args:
        inp: the snapshot (times in seconds, costs in GPU-seconds).

    Returns:
        A ``Plan`` whose ``starts`` are demand starts (FIFO) then speculative starts (best
        first), whose ``cancels`` only name speculative jobs, and whose ``bucket`` is the token
        bucket refilled to ``inp.now``, plus the unspent charge of every cancelled job (capped
        at ``burst_gpu_s``), minus the speculative starts' expected GPU-seconds.

    Raises:
        Nothing for well-typed input: invalid proposals (unknown actions, non-finite P) are
        ignored rather than allowed to stall demand scheduling.
    """
    demanded = frozenset(demand_key(d) for d in inp.demands) if inp.demands else _NO_KEYS
    demand_parents = {key[1] for key in demanded} if demanded else set()
    roster = inp.roster
    live: Mapping[str, RunningJob]
    if roster is not None:  # the shell's maps: no pass over every job
        live = roster.jobs
        spec = roster.speculative.values()
        spec_live = len(roster.speculative)
        running = roster.running_keys
        if any(k in running for k in demanded):
            pool = [j for j in spec if j.parent_id not in demand_parents
                    or (j.memory_id, j.parent_id, j.pose) not in demanded]  # fmt: skip
        else:
            pool = list(spec)
    else:
        live = _live_jobs(inp.jobs)
        spec_jobs = [j for j in live.values() if j.kind == "speculative"]
        spec_live = len(spec_jobs)
        pool = [
            j
            for j in spec_jobs
            if j.parent_id not in demand_parents
            or (j.memory_id, j.parent_id, j.pose) not in demanded
        ]
    w = _Work(
        inp=inp,
        index=TreeIndex(inp.nodes, inp.lookup),
        live=live,
        demanded=demanded,
        bucket=refill(inp.bucket, inp.budget, inp.now),
        spec_live=spec_live,
        cap=speculative_slot_cap(inp.budget),
        pool=pool,
    )
    # The parents of the jobs and demands are the snapshot's only nodes steps b-d read (e reads
    # them all): one filtered scan instead of an index over every node.
    if inp.lookup is None:
        w.index.prefetch({j.parent_id for j in w.pool} | demand_parents,
                         children_of=demand_parents)  # fmt: skip
    _cancel_unreachable(w)
    _trim_to_limits(w)
    _admit_demands(w)
    _admit_speculation(w)
    return new_plan((*w.demand_starts, *w.spec_starts), tuple(w.cancels), w.bucket, w.short)
