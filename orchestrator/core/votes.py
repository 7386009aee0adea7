"""Proposals resolved to chunk keys and combined per key, kept up to date one session at a time.

Why (issue 10): with 10^4 sessions a plan holds ~10^5 proposals, and ``frontier.collect_votes``
reads every one of them (~1-2 us each) and ``frontier.ranked`` values every proposed key, at
every plan, although a session's votes change only when its proposals, its view (cursor, watch
start, think time) or the chunks around its cursor change. ``VoteIndex`` keeps each session's
votes (``session_votes``: ``collect_votes``'s rules, one session at a time) and every key's
combination of them; the live state updates it for the sessions whose inputs changed
(``update``), and ``plan()`` reads it through ``PlanInput.votes`` instead of the proposals.

Contract: an index given as ``PlanInput.votes`` holds exactly the votes ``collect_votes`` would
collect from ``PlanInput.proposals`` over the active sessions and the snapshot's nodes (the same
sessions with the same views, parents resolved through the same chunks), built with the input's
``max_depth``, ``frames``, ``chunk_duration_s`` and ``think_s`` (``fits``). The live state's
stateful test plans each of its inputs with and without the index and compares the plans.

The index is built in three layers, one module each: ``vote_runs.KeyRuns`` (every key's votes
and run, the runs in their order, and the lazy upkeep of both), ``vote_walk.LazyWalk`` (the
walk of the runs best first: ``walk``, ``best_first``, ``candidate``, ``lead``; the bounds that
make it exact are in that module's doc) and ``VoteIndex`` here: the sessions' votes
(``update``, ``drop``), the contract checks (``fits``, ``safe``, ``holds``, ``holds_roster``)
and the reads by key (``probability_of``, ``victims``, ``votes``, ``contents``).

The bounds need normal (not subnormal) floats: ``safe`` turns the lazy walk off (the planner then
ranks from the proposals) when a probability is below 1e-100, a need time is not finite, or a need
time and ``now`` are both within 1e-100 of 0, or 0 < E < 1e-100.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
from collections.abc import Collection, Iterable, Mapping

from orchestrator.core.collect import _Vote
from orchestrator.core.frontier import active_by_id
from orchestrator.core.roster import Roster
from orchestrator.core.session_votes import NodeByKey as NodeByKey
from orchestrator.core.session_votes import NodeOf as NodeOf
from orchestrator.core.session_votes import Resolution, _Raw, pose_memo, session_votes
from orchestrator.core.sorted_keys import SortedKeys as SortedKeys
from orchestrator.core.tree import Key
from orchestrator.core.types import (
    Budget,
    PlanInput,
    Proposal,
    RunningJob,
    SessionView,
    Timing,
)
from orchestrator.core.vote_runs import _TINY, _KeyState, _Params
from orchestrator.core.vote_walk import LazyWalk


class VoteIndex(LazyWalk):
    """Every session's votes, every key's combination, and the keys grouped in runs.

    Args:
        max_depth, frames, timing: the ``Budget.max_depth``, ``PlanInput.frames`` and the
            ``Timing`` (only ``chunk_duration_s`` and ``think_s`` are read) votes are resolved
            with; an input with others does not ``fit``.
    """

    def __init__(self, max_depth: int, frames: int, timing: Timing) -> None:
        super().__init__()
        self.max_depth, self.frames = max_depth, frames
        self.duration, self.think = timing.chunk_duration_s, timing.think_s
        self._timing = timing
        self.pose_of = pose_memo(frames)
        self._sessions: dict[str, tuple[object, Resolution]] = {}  # sid -> (signature, votes)
        self._views: dict[str, SessionView] = {}  # sessions with votes -> the view resolved
        # ``holds_roster``'s last check that held (the roster, its log mark), and the sessions
        # whose entry in ``_views`` changed since.
        self._held_by: tuple[Roster, tuple[int, int]] | None = None
        self._unchecked: set[str] = set()
        self.resolved = 0  # sessions resolved (for benchmarks and tests)

    @classmethod
    def of(cls, inp: PlanInput, node_of: NodeOf, node_by_key: NodeByKey) -> VoteIndex:
        """The index of ``inp``'s proposals over its active sessions (``frontier.active_by_id``)."""
        index = cls(inp.budget.max_depth, inp.frames, inp.timing)
        per: dict[str, list[Proposal]] = {}
        for prop in inp.proposals:
            per.setdefault(prop.session_id, []).append(prop)
        for sid, s in active_by_id(inp).items():
            index.update(s, per.get(sid, ()), node_of, node_by_key)
        return index

    def fits(self, inp: PlanInput) -> bool:
        """True when ``inp`` is planned with the parameters the votes were resolved with."""
        t = inp.timing
        return (self.max_depth, self.frames, self.duration, self.think) == (
            inp.budget.max_depth, inp.frames, t.chunk_duration_s, t.think_s,
        )  # fmt: skip

    def safe(self, now: float, e: float) -> bool:
        """True when the lazy walk's bounds are rigorous for this ``now`` and E (the bounds:
        ``vote_walk`` module doc; the floats they need: this one's)."""
        if self._pending:
            self._settle()
        if self._odd_p or not (e == 0.0 or _TINY <= e < math.inf) or not math.isfinite(now):
            return False
        return not self._odd_t or abs(now) >= _TINY

    def holds(self, active: Mapping[str, SessionView]) -> bool:
        """True when every session with votes is in ``active`` with the view it was resolved
        with (the part of the contract a plan can check cheaply)."""
        get, views = active.get, self._views
        if all(map(operator.is_, map(get, views.keys()), views.values())):  # C-level pass
            return True
        return all(get(sid) == v for sid, v in self._views.items())

    def holds_roster(self, roster: Roster, now: float, budget: Budget) -> bool:
        """``holds`` against a roster's sessions (``PlanInput.roster``, idle ones included):
        True when every session with votes is there with the view it was resolved with. Its
        idleness at ``now`` is not re-checked (it would be a pass over every voter): the shell
        resolves no votes for a session idle at the ``now`` it plans with (``Planner.prepare``
        gives it no proposals), which the roster contract makes part of ``PlanInput.votes``'.

        Incremental: after a check that held against this very roster, only the sessions whose
        view changed since, here (``update``, ``drop``) or in the roster
        (``Roster.changed_since``), are compared again; the others are as they were then. A
        pass over every voter only when the roster is another one or its log was reset.
        """
        last = self._held_by
        if last is not None and last[0] is roster and not self._unchecked:
            mark = roster.mark()
            if mark == last[1]:
                return True  # nothing changed since a check that held (a plan per event)
        get, views = roster.sessions.get, self._views
        changed = roster.changed_since(last[1]) if last is not None and last[0] is roster else None
        if changed is None:
            ok = all(map(operator.is_, map(get, views.keys()), views.values()))  # C-level pass
        else:
            mine = views.get
            ok = all((v := mine(sid)) is None or get(sid) is v
                     for sid in itertools.chain(self._unchecked, changed))  # fmt: skip
        if ok:
            self._held_by = (roster, roster.mark())
            self._unchecked.clear()
        return ok

    def __len__(self) -> int:
        """Sessions with votes."""
        return len(self._sessions)

    def session_ids(self) -> Collection[str]:
        """The sessions the index holds (with or without votes)."""
        return self._sessions.keys()

    def update(
        self,
        session: SessionView,
        proposals: Collection[Proposal],
        node_of: NodeOf,
        node_by_key: NodeByKey,
        signature: object = None,
    ) -> bool:
        """Make ``session``'s votes those of ``proposals`` (``session_votes``).

        ``signature``: anything that changes whenever the votes could (the session's view, its
        proposals, the nodes around its cursor); when it equals the last one given, nothing is
        resolved. None always resolves. Returns True when the session was resolved again.
        """
        sid = session.session_id
        old = self._sessions.get(sid)
        if signature is not None and old is not None and old[0] == signature:
            return False
        res = session_votes(session, proposals, node_of, node_by_key, self.max_depth,
                            self.pose_of, self._timing)  # fmt: skip
        self.resolved += 1
        self._replace(sid, old[1] if old is not None else None, res)
        self._sessions[sid] = (signature, res)
        views = self._views
        if res.votes:
            if views.get(sid) is not session:
                views[sid] = session
                self._unchecked.add(sid)
        elif views.pop(sid, None) is not None:
            self._unchecked.add(sid)
        return True

    def drop(self, session_id: str) -> None:
        """Forget a session's votes."""
        old = self._sessions.pop(session_id, None)
        if self._views.pop(session_id, None) is not None:
            self._unchecked.add(session_id)
        if old is not None:
            self._replace(session_id, old[1], None)

    def _replace(self, sid: str, old: Resolution | None, new: Resolution | None) -> None:
        old_votes = old.votes if old is not None else {}
        new_votes = new.votes if new is not None else {}
        keys = self._keys
        for key in old_votes.keys() - new_votes.keys():
            state = keys[key]
            del state.voters[sid]
            state.exists -= key in old.existing  # type: ignore[union-attr]
            self._pending.add(key)
        for key, vote in new_votes.items():
            before = old_votes.get(key)
            was = old is not None and key in old.existing
            seen = key in new.existing  # type: ignore[union-attr]
            if before == vote and was == seen:
                continue
            found = keys.get(key)
            if found is None:
                found = keys[key] = _KeyState()
            found.voters[sid] = vote
            found.exists += seen - was
            self._pending.add(key)

    def contents(self) -> dict[Key, tuple[dict[str, _Raw], bool, _Params]]:
        """Key -> (its votes by session, whether it exists, its run): what two indexes of the
        same input must agree on (tests)."""
        self._settle()
        return {
            k: (dict(v.voters), v.exists > 0, v.run)
            for k, v in self._keys.items()
            if v.run is not None  # a key left without votes, still in its run's list
        }

    def probability_of(self, key: Key) -> float | None:
        """``frontier.probability`` of the key's votes (its run's combined P, the same
        arithmetic in the same session order), or None when nobody proposed it."""
        self._settle()
        state = self._keys.get(key)
        return None if state is None or state.run is None else state.run[0]

    def probabilities(self, keys: Iterable[Key]) -> list[float | None]:
        """``probability_of`` of each of ``keys``, in order (one pass for many keys)."""
        self._settle()
        get = self._keys.get
        return [None if (st := get(k)) is None or st.run is None else st.run[0] for k in keys]

    def victims(
        self, jobs: Iterable[RunningJob], first: int | None = None
    ) -> list[tuple[float, float, str, RunningJob]]:
        """``plan``'s heap entries of preemptible jobs, one pass: (the P of the job's key, its
        admitted probability when nobody proposes it; -started_at; job id; job). With
        ``first``, only the ``first`` smallest, in order (a heap as it is): a plan that can
        preempt k of n jobs keeps k entries alive, not n (fewer young objects for the
        garbage collector to walk, no heapify of n)."""
        self._settle()
        get = self._keys.get
        entries = (
            (j.probability if (st := get((j.memory_id, j.parent_id, j.pose))) is None
             or st.run is None else st.run[0], -j.started_at, j.job_id, j)
            for j in jobs
        )  # fmt: skip
        return list(entries) if first is None else heapq.nsmallest(first, entries)

    def votes(self, key: Key) -> _Vote | dict[str, _Vote] | None:
        """The key's votes as ``frontier.collect_votes`` gives them at ``now`` = -inf (need times
        unclamped; ``frontier.probability`` reads them), or None when nobody proposed it."""
        self._settle()
        state = self._keys.get(key)
        if state is None or not state.voters:
            return None
        voters = state.voters
        if len(voters) == 1:
            (v,) = voters.values()
            return v
        return dict(voters)
