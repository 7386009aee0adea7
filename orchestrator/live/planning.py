"""The planning half of the live state: build the core's input from the neighbourhoods that
can change a plan, and apply the core's decision (``LiveState`` inherits it; see ``state``).

Split from ``state`` to keep each module about one thing: ``requests`` resolves requests,
``outcomes`` takes job outcomes back, this module turns the state into a ``PlanInput`` and a
``Plan`` back into jobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from orchestrator.core.budget import refund
from orchestrator.core.frontier import expected_gpu_s, idle_after_s, is_idle
from orchestrator.core.plan import plan
from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.roster import Roster
from orchestrator.core.tree import Key
from orchestrator.core.types import (
    BucketState,
    Budget,
    DemandRequest,
    JobKind,
    NodeState,
    Plan,
    PlanInput,
    PolicyContext,
    Proposal,
    SessionView,
    Timing,
)
from orchestrator.core.votes import VoteIndex
from orchestrator.live.build import builder
from orchestrator.live.changes import Changes, LiveSession, _Memory, coarse_epoch
from orchestrator.live.proposals import ProposalCache, Proposer, children_signature
from orchestrator.live.records import (
    CancelledJob,
    Claim,
    LiveJob,
    Scheduled,
    StartedJob,
)
from orchestrator.live.tree import KnownNode, LiveLookup, known_node
from orchestrator.live.upkeep import allow_all, slack

_plan_input = builder(PlanInput)  # one per plan
_scheduled = builder(Scheduled)  # one per plan
_started = builder(StartedJob)  # one per start
_cancelled = builder(CancelledJob)  # one per cancel


class Planner(Changes):
    """Planning over the live state's fields (declared here, set by ``LiveState.__init__``)."""

    budget: Budget
    timing: Timing
    frames: int
    seed: int
    proposer: Proposer
    proposals: ProposalCache
    bucket: BucketState
    host_epoch: int
    new_chunk_id: Callable[[Key], str]
    new_job_id: Callable[[], str]
    speculation_allowed: Callable[[str], bool]
    plans_skipped: int
    _memories: dict[str, _Memory]
    _sessions: dict[str, LiveSession]
    _running: dict[str, LiveJob]
    _job_chunk: dict[str, str]
    _demands: dict[str, DemandRequest]
    _dirty: bool
    _pending_refund: float
    _next_idle_at: float
    _bucket_at: float
    _votes: VoteIndex | None = None  # every session's votes, resolved incrementally (prepare)
    _voted: dict[str, tuple[object, object, object]]  # sid -> (proposals, view, subtree) voted
    _roster: Roster
    _lookup: LiveLookup
    _job_changes: dict[str, LiveJob | None]
    _basis: tuple[object, ...] | None = None  # what every session was last visited with
    _last_now: float = -math.inf
    _sessions_t: tuple[SessionView, ...] = ()

    def _release(self, job: LiveJob, state: str, now: float) -> None:
        raise NotImplementedError  # ``outcomes.Outcomes._release``, via LiveState

    def needs_plan(self, now: float) -> bool:
        """Whether a plan now could decide anything the last one did not.

        True after any change a plan reads (requests, sessions, job ends, configuration), when
        an active session goes idle (its speculation is cancelled), or when the bucket has
        refilled the price of one more job after a plan it limited. Time alone never makes a
        rejected candidate worth starting: its expected saving only shrinks as its need time
        approaches (``frontier.benefit_s``), so every other plan would be a repeat.
        """
        if self._dirty or now >= self._next_idle_at or now >= self._bucket_at:
            return True
        self.plans_skipped += 1
        return False

    def next_wake(self) -> float:
        """When a plan could next decide something new with no event in between (seconds on the
        caller's clock; inf if never): the earliest moment an active session goes idle or is
        considered gone (its speculation is then cancelled), or the bucket pays the cheapest
        guess it refused. A shell that plans only on events should also wake then."""
        return min(self._next_idle_at, self._bucket_at)

    def schedule(self, now: float, *, warm_idle: int | None = None) -> Scheduled:
        """Plan and apply: ``apply(plan(prepare(now, warm_idle=warm_idle)), now)``."""
        return self.apply(plan(self.prepare(now, warm_idle=warm_idle)), now)

    def prepare(self, now: float, *, warm_idle: int | None = None, full: bool = False) -> PlanInput:
        """The core's input: live sessions, running jobs, demands, and only the nodes a plan can
        read (cursor subtrees of sessions that may speculate, to ``max_depth``; each job's chunk
        and its ancestors to ``max_depth``; each demand's parent and the parent's children).

        ``warm_idle``: warm containers idle now (the pool's count; None = unknown / unlimited),
        passed to the core as ``PlanInput.warm_idle`` so a guess boots a container only when it
        pays for the cold start. Evicts ended sessions and cold memories first.

        The input also carries the state's own indexes, which ``plan()`` reads instead of
        re-indexing the tuples: the vote index (``votes``), lookups into the known trees
        (``lookup``, ``LiveLookup``) and the roster of sessions and jobs (``roster``), each
        brought up to date here for what changed since the last prepare. A shell that plans
        in a worker thread must not call ``prepare`` again before that plan returns (the tree
        lookups may meanwhile see chunks that became ready or failed; ``apply`` drops what the
        state has moved past, as for any plan made on an older input).

        Cost: O(what changed since the last prepare), not O(sessions): only the sessions listed
        in ``orchestrator.live.upkeep`` are looked at again, the rest give the very objects
        they gave last time. ``full``: look at every session, job and demand again (what every
        prepare did before; the input is the same either way, which the stateful test checks).
        """
        votes = self._vote_index()
        basis = (self.budget, self.frames, self.host_epoch, votes)
        if full or now < self._last_now or basis != self._basis:
            self._everything()
            self._basis = basis
        self._last_now = now
        self._evict(now)
        self._pending_refund = 0.0
        budget = self.budget
        self._job_moves(self._job_changes, budget.max_depth)
        self._demand_moves()
        visit = self._moved_memories(budget.max_depth)
        visit.update(self._touched, self._always, self._limbo)
        self._touched.clear()
        due = self._idle.due(now + slack(now))
        visit.update(sid for _, sid, _ in due)
        if self.speculation_allowed is not allow_all and self._gated:
            allowed = self.speculation_allowed
            visit.update(sid for sid, was in self._gated.items() if allowed(sid) != was)
        sessions = self._sessions
        todo = [sid for sid in visit if sid in sessions]
        if len(todo) > 1:
            todo.sort(key=self._order.__getitem__)
        for sid in todo:
            self._visit(sessions[sid], now, votes)
        for t, sid, stamp in due:
            if t >= now:
                self._idle.push(t, sid, stamp)  # it still counts for the next idle time
        self._next_idle_at = self._idle.first()
        if self._gone:
            for sid in self._gone:
                if sid not in sessions:
                    votes.drop(sid)  # evicted
            self._gone.clear()
        if self._tuples_moved:
            self._sessions_t = tuple(self._views.values())
            self._tuples_moved = False
        # Positional: one per plan (keywords cost a third more); every field passed
        # (``tests/unit/live/test_records.py`` fails if PlanInput gains or reorders one).
        return _plan_input(
            now, self._counts.nodes(), self._sessions_t, tuple(self._roster.jobs.values()),
            tuple(self._demands.values()), self._props.tuple(), budget, self.bucket,
            self.timing, self.frames, warm_idle, votes, self._lookup, self._roster,
        )  # fmt: skip

    def _visit(self, s: LiveSession, now: float, votes: VoteIndex) -> None:
        """Bring one session's proposals, held nodes, votes, roster entry and idle deadline up
        to date at ``now`` (what every prepare did for every session)."""
        v, budget = s.view, self.budget
        sid = v.session_id
        idle = is_idle(v, now, budget)
        props: tuple[Proposal, ...] = ()
        sub: tuple[KnownNode, ...] | None = None
        if idle or v.policy == "none":
            self._gated.pop(sid, None)  # idle or gone (``viewers``): its speculation is cancelled
        else:
            allowed = self._gated[sid] = self.speculation_allowed(sid)
            if allowed:  # else P of its speculation drops to 0: the core cancels what it runs
                props, sub = self._propose_below(s, now)
        if sub is not None and not self.proposer.time_free(s.arm):
            self._always.add(sid)  # its policy reads the time: asked again every plan
        else:
            self._always.discard(sid)
        held = sub if sub is not None else ()
        if self._held.get(sid, ()) is not held:
            self._counts.swap(self._held.get(sid, ()), held)
            self._held[sid] = held
        if (old := self._views.get(sid)) is not v:
            self._cursor_moves(sid, old, v)
            self._views[sid] = v
            self._tuples_moved = True
        self._props.set(sid, props)
        # Resolved again only when what resolution reads changed: the proposals, the view,
        # the cursor's subtree to max_depth (``VoteIndex.update``); the same objects as at
        # the last update are not even compared. The roster follows the views
        # (``PlanInput.roster``): it holds the view last voted on.
        last = self._voted.get(sid)
        if last is None or last[0] is not props or last[1] is not v or last[2] is not sub:
            if last is None or last[1] is not v:
                self._roster.set_session(v)
            tree = self._memories[v.memory_id].tree
            votes.update(v, props, tree.core_node, tree.core_by_key, (props, v, sub))
            self._voted[sid] = (props, v, sub)
        t = v.last_active_at + idle_after_s(v, budget)
        if self._idle.stamp.get(sid) is not v:
            self._idle.set(sid, t, v, push=t >= now)
        if t < now and not idle:
            self._limbo.add(sid)  # past its deadline by rounding only: looked at next time
        else:
            self._limbo.discard(sid)

    def _vote_index(self) -> VoteIndex:
        """The incremental vote index, new when the parameters it resolves with changed."""
        votes, t = self._votes, self.timing
        if votes is None or (votes.max_depth, votes.frames, votes.duration, votes.think) != (
            self.budget.max_depth, self.frames, t.chunk_duration_s, t.think_s,
        ):  # fmt: skip
            votes = self._votes = VoteIndex(self.budget.max_depth, self.frames, t)
            self._voted.clear()  # every session is resolved afresh into the new index
        return votes

    def _propose(
        self, s: LiveSession, now: float
    ) -> tuple[tuple[Proposal, ...], tuple[KnownNode, ...] | None]:
        """The session's proposals and the cursor subtree they were made over (None: none)."""
        v = s.view
        if is_idle(v, now, self.budget) or v.policy == "none":
            return (), None  # idle or gone (``viewers``): the core cancels what runs only for it
        if not self.speculation_allowed(v.session_id):
            return (), None  # P of its speculation drops to 0: the core cancels what it runs
        return self._propose_below(s, now)

    def _propose_below(
        self, s: LiveSession, now: float
    ) -> tuple[tuple[Proposal, ...], tuple[KnownNode, ...] | None]:
        """``_propose`` for a session that may speculate: none below a cursor not ready."""
        v, budget = s.view, self.budget
        mem = self._memories[v.memory_id]
        where = (v.cursor_chunk_id, mem.tree.version, budget.max_depth)
        cached = self._subtrees.get(v.session_id)
        if cached is None or cached[0] != where:
            cursor = mem.tree.get(v.cursor_chunk_id)
            if cursor is None or cursor.state != "ready":
                return (), None  # nothing can start below a chunk that is not ready
            children: dict[str, NodeState] = {
                c.action: c.state for c in mem.tree.children(cursor.chunk_id)
                if c.action is not None and c.state != "pending"
            }  # fmt: skip
            sub = tuple(mem.tree.subtree(cursor.chunk_id, budget.max_depth))
            cached = self._subtrees[v.session_id] = (where, sub, children)
        kids = cached[2]

        def context() -> PolicyContext:
            return PolicyContext(
                session=v, memory_history=self._memory_history(mem), children=kids,
                actions=ACTION_NAMES, max_depth=budget.max_depth, now=now, seed=self.seed,
            )  # fmt: skip

        # The children's states only for a policy that reads them (``proposals`` module doc).
        seen = None if self.proposer.children_free(s.arm) else children_signature(kids)
        signature = (v.cursor_chunk_id, len(v.history), s.arm, seen,
                     coarse_epoch(mem.epoch), self.host_epoch, budget.max_depth)  # fmt: skip
        props = self.proposals.get(self.proposer, s.arm, v.session_id, context, signature)
        return props, cached[1]

    def _memory_history(self, mem: _Memory) -> tuple[tuple[str, ...], ...]:
        cached = mem.history_cache
        if cached is None or cached[0] != mem.epoch:
            histories = tuple(self._sessions[sid].view.history for sid in sorted(mem.sessions))
            mem.history_cache = cached = (mem.epoch, histories)
        return cached[1]

    def apply(self, decision: Plan, now: float) -> Scheduled:
        """Carry ``decision`` into the state: cancelled jobs leave their slots, started jobs take
        theirs (new chunk ids minted for new keys). Actions the state has moved past are dropped
        (``Scheduled.stale``) and a dropped start's charge goes back to the bucket."""
        # Refunds of requested guesses made after prepare() are kept (the plan did not see them).
        self.bucket, stale = refund(decision.bucket, self.budget, self._pending_refund), 0
        self._pending_refund = 0.0
        cancels: list[CancelledJob] = []
        for c in decision.cancels:
            job = self._running.get(self._job_chunk.get(c.job_id, ""))
            if job is None or job.kind != "speculative":
                stale += 1
                continue
            self._release(job, "failed", now)
            cancels.append(_cancelled(job.job_id, job.chunk_id, job.memory_id, c.reason))
        starts: list[StartedJob] = []
        for st in decision.starts:
            started = self._start(st.kind, st.memory_id, st.parent_id, st.pose, st.action,
                                  st.request_id, st.session_id, st.probability, st.depth,
                                  st.expected_gpu_s, now, st.charged_gpu_s)  # fmt: skip
            if started is None:
                stale += 1
                if st.kind == "speculative":
                    self.bucket = refund(self.bucket, self.budget, st.charged_gpu_s)
                continue
            starts.append(_started(started[0], started[1], st.reason))
        self._dirty = stale > 0
        # Re-plan once the bucket pays the cheapest guess it refused; after a plan that did not
        # look (empty bucket), once it pays a fresh depth-1 guess (it runs about one step).
        rate, price = self.budget.rate_gpu_s_per_s, decision.bucket_short_gpu_s
        if price is None and not self.bucket.tokens > 0.0:
            step = self.timing.chunk_duration_s + self.timing.think_s
            price = min(expected_gpu_s(self.timing), step)
        short = (
            price is not None and rate > 0 and self.bucket.tokens < price <= self.budget.burst_gpu_s
        )
        self._bucket_at = (
            now + (price - self.bucket.tokens) / rate if short and price is not None
            else float("inf")
        )  # fmt: skip
        return _scheduled(tuple(starts), tuple(cancels), decision, stale)

    def _start(
        self, kind: JobKind, memory_id: str, parent_id: str | None, pose: str,
        action: str | None, request_id: str | None, session_id: str | None, probability: float,
        depth: int, expected_gpu_s: float, now: float, charged_gpu_s: float = 0.0,
    ) -> tuple[LiveJob, Claim] | None:  # fmt: skip
        mem = self._memories.get(memory_id)
        if mem is None:
            return None
        claim: Claim = "none"
        if kind == "demand":
            chunk = request_id.partition("/")[2] if request_id is not None else ""
            if self._demands.get(chunk) is None or self._demands[chunk].request_id != request_id:
                return None
            self._take_demand(chunk)
            node = mem.tree.get(chunk)
            if node is None or node.state != "pending":
                return None
        else:
            parent = mem.tree.get(parent_id)
            if parent_id is not None and (parent is None or parent.state != "ready"):
                return None
            key = (memory_id, parent_id, pose)
            node = mem.tree.by_key(key)
            if node is not None and node.state != "failed":
                return None  # ready, running or demanded meanwhile
            claim = "reclaim" if node is not None else "insert"
            if node is None:
                # Put running at once: the same tree as putting it failed and starting it.
                depth_ = parent.depth + 1 if parent is not None else 0
                node = mem.tree.put(known_node(self.new_chunk_id(key), memory_id, parent_id,
                                               pose, action, "running", depth_))  # fmt: skip
        if node.state != "running":
            node = mem.tree.set_state(node.chunk_id, "running", now)
        s = self._sessions.get(session_id) if session_id is not None else None
        job = LiveJob(
            self.new_job_id(), node.chunk_id, memory_id, node.parent_id, node.pose, node.action,
            kind, kind, session_id, probability, depth, expected_gpu_s, now,
            s.view.policy if s else None, s.arm if s else None,
            charged_gpu_s if kind == "speculative" else 0.0,
        )  # fmt: skip
        self._running[node.chunk_id] = job
        self._job_chunk[job.job_id] = node.chunk_id
        self._job_changes[job.job_id] = job
        return job, claim
