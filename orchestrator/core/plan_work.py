"""One ``plan()`` call's scratch state and its heap of preemptible jobs (pure).

Apart from ``plan`` (the driver) because every step reads and updates the same state: steps
b-d (``plan_slots``) and e (``plan_speculate``) share ``_Work``: the jobs holding a slot, the
ones this plan cancelled (with their refunds), the starts so far, the bucket, the vote index
once found usable, and the "least valuable" heap over the preemptible jobs, built on the first
preemption or trim (``_victim_heap``). ``plan``'s module doc gives the order of the steps, the
refund rule and what "least valuable" means.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.core.budget import cold_start_s, refund, unspent_gpu_s
from orchestrator.core.build import new_cancel
from orchestrator.core.collect import Votes, collect_votes, probability
from orchestrator.core.cursors import Want
from orchestrator.core.frontier import active_by_id
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import (
    BucketState,
    CancelJob,
    DemandRequest,
    PlanInput,
    RunningJob,
    SessionView,
    StartJob,
)
from orchestrator.core.valuation import warm_gpu_s
from orchestrator.core.votes import VoteIndex


def job_key(job: RunningJob) -> Key:
    """The chunk key a running job generates."""
    return (job.memory_id, job.parent_id, job.pose)


def demand_key(demand: DemandRequest) -> Key:
    """The chunk key a demand asks for."""
    return (demand.memory_id, demand.parent_id, demand.pose)


_Victim = tuple[float, float, str, RunningJob]
"""Heap entry of a preemptible job: (current P, -started_at, job_id, job)."""


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
