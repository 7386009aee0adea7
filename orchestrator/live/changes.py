"""The live state's change log between two plans, and eviction (``LiveState`` inherits it).

``LiveState``'s mutators record here what they changed (a session touched, a memory's epoch
bumped, a demand queued or taken, a job's memory possibly cold); ``Planner.prepare`` reads the
record to visit only what moved (``orchestrator.live.upkeep``'s module doc says what, and why
that gives the same input as visiting everything). Eviction is here too, driven by the same
record: ended and long-silent sessions come off a deadline heap, cold memories are looked for
among those that lost a session, a job or a demand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.core.roster import Roster
from orchestrator.core.types import Budget, DemandRequest, NodeState, SessionView
from orchestrator.core.votes import VoteIndex
from orchestrator.live.proposals import ProposalCache, Proposer
from orchestrator.live.records import LiveJob, Producer
from orchestrator.live.tree import KnownNode, KnownTree
from orchestrator.live.upkeep import Deadlines, Flat, NodeCounts, slack
from orchestrator.live.viewers import ThinkStats
from policies.base import forget_memory, forget_session


@dataclass(slots=True)
class LiveSession:
    """One live viewer: the core's view, its arm, requests it waits on, whether it left, and
    its observed think times (``orchestrator.live.viewers``); ``watching`` is True once a chunk
    was served to it since it (re)joined (only then does a request's gap measure thinking)."""

    view: SessionView
    arm: str
    waiting: int = 0
    ended: bool = False
    think: ThinkStats = field(default_factory=ThinkStats)
    watching: bool = False


@dataclass(slots=True)
class _Memory:
    tree: KnownTree
    sessions: set[str] = field(default_factory=set)
    producers: dict[str, Producer] = field(default_factory=dict)  # ready chunk id -> its job
    epoch: int = 0  # bumped by every action observed on it and every session joining / leaving
    history_cache: tuple[int, tuple[tuple[str, ...], ...]] | None = None
    coarse: int = -1  # coarse_epoch(epoch) at the last prepare (its sessions' signatures hold it)


def coarse_epoch(epoch: int) -> int:
    """The memory epoch in steps of about 12 %: what a peer's action changes is one more count
    in the memory's statistics, so a session's proposals are renewed when the memory's history
    has grown by about an eighth, not at every peer's step (with 500 viewers on one memory,
    renewing all 500 on every hit made each hit cost milliseconds of policy time). The session's
    own steps renew them at once (its cursor and history are in the signature)."""
    return int(math.log2(1 + epoch) * 6)


Held = tuple[KnownNode, ...]
_Subtree = tuple[tuple[str, int, int], Held, dict[str, NodeState]]
"""(cursor, tree version, depth) -> the cursor's subtree and its children's states."""


class Changes:
    """The change record and eviction over the live state's fields (set by ``__init__``)."""

    budget: Budget
    evict_after_s: float
    proposer: Proposer
    proposals: ProposalCache
    _dirty: bool
    _sessions: dict[str, LiveSession]
    _memories: dict[str, _Memory]
    _trees: dict[str, KnownTree]
    _chunk_tree: dict[str, KnownTree]
    _running: dict[str, LiveJob]
    _demands: dict[str, DemandRequest]
    _roster: Roster
    _voted: dict[str, tuple[object, object, object]]
    _votes: VoteIndex | None
    _subtrees: dict[str, _Subtree]

    def _init_changes(self) -> None:
        self._touched: set[str] = set()  # view replaced, arm moved, opened or closed
        self._order: dict[str, int] = {}  # session id -> when it entered ``_sessions``
        self._opened = 0
        self._tree_moved: set[str] = set()  # memories whose tree changed (``KnownTree``)
        self._epoch_moved: set[str] = set()  # memories whose epoch was bumped
        self._demand_moved: set[str] = set()  # chunks whose demand was queued or taken
        self._cold: set[str] = set()  # memories that may hold nothing any more
        # Memories evicted so far: a shell that keeps something of its own per memory (the
        # simulator's chunk store) looks for which ones only when this moved.
        self.memories_evicted = 0
        self._gone: set[str] = set()  # evicted sessions whose votes prepare drops
        self._always: set[str] = set()  # sessions whose policy is asked every plan
        self._limbo: set[str] = set()  # past their idle deadline, not yet idle (rounding)
        self._gated: dict[str, bool] = {}  # sessions the speculation predicate was asked for
        self._idle = Deadlines()  # idle deadlines, stamped with the view
        self._ends = Deadlines()  # eviction deadlines, stamped with (view, ended)
        self._ends_params: tuple[float, float] | None = None  # (idle timeout, evict after)
        self._views: dict[str, SessionView] = {}  # the views last visited, in session order
        self._at_cursor: dict[str, set[str]] = {}  # cursor chunk -> sessions (last visited)
        self._props = Flat()  # their proposals, in session order
        self._held: dict[str, Held] = {}  # session -> cursor subtree it holds in ``_counts``
        self._job_held: dict[str, tuple[str, Held]] = {}  # job id -> (memory, its ancestry)
        self._mem_jobs: dict[str, dict[str, str]] = {}  # memory -> job id -> chunk id
        self._demand_held: dict[str, tuple[str, Held]] = {}  # chunk -> (memory, neighbourhood)
        self._mem_demands: dict[str, set[str]] = {}  # memory -> chunks demanded (held)
        self._counts = NodeCounts()
        self._tuples_moved = True  # ``_views`` changed since its tuple was built
        # Take every job's and demand's nodes again at the next prepare, not only those whose
        # nodes moved (``_everything``; what every prepare did before).
        self._rehold = False

    # ---- what the mutators record ------------------------------------------------------------

    def _touch(self, session_id: str) -> None:
        """The session's view, arm or ``ended`` changed."""
        self._touched.add(session_id)

    def _entered(self, session_id: str) -> None:
        """A session (re)opens: numbered on first entry (the order prepare visits in)."""
        if session_id not in self._order:
            self._opened += 1
            self._order[session_id] = self._opened
        self._touched.add(session_id)

    def _bump(self, mem: _Memory) -> None:
        """One more action, or a session joining / leaving, on ``mem``."""
        mem.epoch += 1
        self._epoch_moved.add(mem.tree.memory_id)

    def _put_demand(self, demand: DemandRequest, chunk_id: str) -> None:
        self._demands[chunk_id] = demand
        self._demand_moved.add(chunk_id)

    def _take_demand(self, chunk_id: str) -> None:
        d = self._demands.pop(chunk_id, None)
        if d is not None:
            self._demand_moved.add(chunk_id)
            self._cold.add(d.memory_id)

    def _everything(self) -> None:
        """Make the next prepare visit every session, job and demand (as if all moved)."""
        self._touched.update(self._sessions)
        self._tree_moved.update(self._memories)
        self._epoch_moved.update(self._memories)
        self._idle.clear()
        self._limbo.clear()
        self._ends_params = None
        self._rehold = True

    # ---- eviction ----------------------------------------------------------------------------

    def _evict(self, now: float) -> None:
        """Evict sessions that ended (or were silent ``evict_after_s``) and have been quiet for
        ``idle_timeout_s`` with nothing to wait for, then the memories left with no session,
        job or demand. Only sessions whose eviction deadline passed are looked at."""
        idle_s, after = self.budget.idle_timeout_s, self.evict_after_s
        ends = self._ends
        if self._ends_params != (idle_s, after):
            ends.clear()
            self._ends_params = (idle_s, after)
        touched: Iterable[str] = self._sessions if not ends.stamp else self._touched
        for sid in touched:
            s = self._sessions.get(sid)
            if s is None:
                continue
            stamp = ends.stamp.get(sid)
            if not (isinstance(stamp, tuple) and stamp[0] is s.view and stamp[1] == s.ended):
                quiet = idle_s if s.ended else max(idle_s, after)
                ends.set(sid, s.view.last_active_at + quiet, (s.view, s.ended))
        later = []
        for entry in ends.due(now + slack(now)):
            s = self._sessions.get(entry[1])
            if s is None:
                continue
            quiet = now - s.view.last_active_at
            if s.waiting == 0 and quiet > idle_s and (s.ended or quiet > after):
                self.evict_session(entry[1])
            elif s.waiting == 0:  # not yet (rounding): looked at again; waiting: at its answer
                later.append(entry)
        for t, sid, stamp in later:
            ends.push(t, sid, stamp)
        if self._cold:
            self._evict_memories()

    def _evict_memories(self) -> None:
        busy: set[str] | None = None
        for mid in self._cold:
            mem = self._memories.get(mid)
            if mem is None or mem.sessions:
                continue
            if busy is None:
                busy = {j.memory_id for j in self._running.values()}
                busy.update(d.memory_id for d in self._demands.values())
            if mid in busy:
                continue
            del self._memories[mid]
            del self._trees[mid]
            self.memories_evicted += 1
            for n in mem.tree:
                self._chunk_tree.pop(n.chunk_id, None)
            self._tree_moved.discard(mid)
            self._epoch_moved.discard(mid)
            forget_memory(self.proposer, mid)
        self._cold.clear()

    def evict_session(self, session_id: str) -> None:
        """Forget a session now (its rows stay in the database)."""
        self._dirty = True
        s = self._sessions.pop(session_id, None)
        if s is None:
            return
        self._roster.drop_session(session_id)
        self._voted.pop(session_id, None)
        self.proposals.forget(session_id)
        forget_session(self.proposer, session_id)  # the policy's own per-session state
        # Its cached cursor subtree would otherwise keep an ended session's nodes alive.
        self._subtrees.pop(session_id, None)
        self._forget_visited(session_id)
        mem = self._memories.get(s.view.memory_id)
        if mem is not None:
            mem.sessions.discard(session_id)
            self._bump(mem)
            self._cold.add(mem.tree.memory_id)

    def _forget_visited(self, sid: str) -> None:
        self._gone.add(sid)
        self._touched.discard(sid)
        self._order.pop(sid, None)
        self._always.discard(sid)
        self._limbo.discard(sid)
        self._gated.pop(sid, None)
        self._idle.forget(sid)
        self._ends.forget(sid)
        self._cursor_moves(sid, self._views.pop(sid, None), None)
        self._props.drop(sid)
        self._counts.swap(self._held.pop(sid, ()), ())
        self._tuples_moved = True

    # ---- holders of nodes: jobs and demands --------------------------------------------------

    def _cursor_moves(self, sid: str, old: SessionView | None, new: SessionView | None) -> None:
        """Keep ``_at_cursor`` as a session's visited view goes from ``old`` to ``new``."""
        was = old.cursor_chunk_id if old is not None else None
        now = new.cursor_chunk_id if new is not None else None
        if was == now:
            return
        if was is not None:
            at = self._at_cursor[was]
            at.discard(sid)
            if not at:
                del self._at_cursor[was]
        if now is not None:
            self._at_cursor.setdefault(now, set()).add(sid)

    def _moved_memories(self, max_depth: int) -> set[str]:
        """Sessions whose cursor subtree (to ``max_depth``) holds a chunk that was put or moved,
        and sessions on memories whose epoch moved a coarse step; the jobs and demands of moved
        trees whose nodes moved take them again. (A session whose subtree holds no moved chunk
        reads the same nodes, children states and proposals as before: visiting it changes
        nothing.)"""
        stale: set[str] = set()
        for mid in self._epoch_moved:
            mem = self._memories.get(mid)
            if mem is not None and (c := coarse_epoch(mem.epoch)) != mem.coarse:
                mem.coarse = c
                stale.update(mem.sessions)
        self._epoch_moved.clear()
        every, self._rehold = self._rehold, False
        at = self._at_cursor
        for mid in self._tree_moved:
            mem = self._memories.get(mid)
            if mem is None:
                continue
            tree = mem.tree
            moved = tree.take_moved()
            for cid in moved:
                for n in tree.ancestry(cid, max_depth):
                    if n.chunk_id in at:
                        stale.update(at[n.chunk_id])
            jobs = self._mem_jobs.get(mid)
            if jobs:
                job_held = self._job_held
                for job_id, chunk in jobs.items():
                    if every or not tree.is_ancestry(job_held[job_id][1], max_depth):
                        self._hold_job(job_id, mid, tree.ancestry(chunk, max_depth))
            demanded = self._mem_demands.get(mid)
            if demanded:
                demand_held, demands = self._demand_held, self._demands
                for chunk in demanded:
                    d = demands[chunk]
                    if every or not tree.is_family(demand_held[chunk][1], d.parent_id):
                        self._hold_demand(chunk, mid, self._demand_nodes(d, tree))
        self._tree_moved.clear()
        return stale

    def _job_moves(self, changes: dict[str, LiveJob | None], max_depth: int) -> None:
        """Jobs started, promoted or ended since the last prepare into the roster and holders."""
        roster = self._roster
        for job_id, changed in changes.items():
            if changed is None:
                roster.drop_job(job_id)
                old = self._job_held.pop(job_id, None)
                if old is not None:
                    self._counts.swap(old[1], ())
                    jobs = self._mem_jobs[old[0]]
                    del jobs[job_id]
                    if not jobs:
                        del self._mem_jobs[old[0]]
            else:
                roster.set_job(changed.as_core())
                mid = changed.memory_id
                tree = self._memories[mid].tree
                self._mem_jobs.setdefault(mid, {})[job_id] = changed.chunk_id
                self._hold_job(job_id, mid, tree.ancestry(changed.chunk_id, max_depth))
        changes.clear()

    def _hold_job(self, job_id: str, mid: str, nodes: Held) -> None:
        old = self._job_held.get(job_id)
        self._counts.swap(old[1] if old is not None else (), nodes)
        self._job_held[job_id] = (mid, nodes)

    def _demand_moves(self) -> None:
        """Demands queued or taken since the last prepare into the holders."""
        for chunk in self._demand_moved:
            old = self._demand_held.pop(chunk, None)
            if old is not None:
                self._counts.swap(old[1], ())
                chunks = self._mem_demands[old[0]]
                chunks.discard(chunk)
                if not chunks:
                    del self._mem_demands[old[0]]
            d = self._demands.get(chunk)
            if d is not None:
                self._mem_demands.setdefault(d.memory_id, set()).add(chunk)
                tree = self._memories[d.memory_id].tree
                self._hold_demand(chunk, d.memory_id, self._demand_nodes(d, tree))
        self._demand_moved.clear()

    def _hold_demand(self, chunk: str, mid: str, nodes: Held) -> None:
        old = self._demand_held.get(chunk)
        self._counts.swap(old[1] if old is not None else (), nodes)
        self._demand_held[chunk] = (mid, nodes)

    @staticmethod
    def _demand_nodes(d: DemandRequest, tree: KnownTree) -> Held:
        """What a plan reads around a demand: its parent and the parent's children (the roots
        for a root demand)."""
        return tree.family(d.parent_id)
