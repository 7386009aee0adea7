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

Lazy valuation (``best_first``: ``frontier.ranked``'s candidates, in its order, valuing only the
keys it has to). Ranking values warm (cold = 0). Let a key's combined probability be p, and T its
unclamped need time (``watch_started_at + depth * step``, the smallest over its sessions), so the
lead is L = max(0, T - now). From ``frontier.value``:

- score <= p / (1 - p): for d = 1 benefit and waste carry the same min(E, L); for d >= 2 the
  benefit also loses the deferred saving. Floating-point rounding moves a computed score by a few
  ulps, so the bound used is ``ub_s = p / (1 - p) * (1 + 1e-9)`` (inf when p = 1); scores are then
  strictly below it when finite.
- benefit <= p * min(E, L) (the rounded products are monotone), bounded by
  ``ub_b = p_hi * min(E, L)`` with p_hi = 1 for p = 1 (else p (1 + 1e-9)).

Keys whose (p, depth, T, step) are equal have bit-identical values at any ``now`` and E: they
form one *run*, valued once and yielded in key order. Runs sit in a heap ordered by
(-ub_s, -T, -p, depth, step), which is time-free; along it (-ub_s, -ub_b) never decreases (a
smaller ub_s, or the same ub_s and an earlier need time). ``best_first`` walks the runs in that
order without changing the heap, values each, and yields the best valued key as soon as its
(-score, -benefit) is below the next run's (-ub_s, -ub_b): no run not yet valued can rank before
it. Runs with p < ``min_probability`` are skipped and the walk stops at the first run with
``ub_s <= min_benefit_per_gpu_s`` (nothing after it passes the score filter) or with ub_s below
that of ``min_probability`` (ub_s is monotone in p: no later run has the P). ``walk`` is the same
walk yielding (key, run, value) and skipping the rest of any run the caller drops; ``best_first``
builds the ``Candidate`` of each. While there are at most ``_SORTED`` runs (a simulator's 10-130)
they are kept in a sorted list instead of the heap, updated by bisection as a run is made or
emptied, so a walk reads them in order with no heap work at all. Cost per plan:
O((r + k) log r) for the r runs valued and the k keys yielded, instead of every proposal and key.

Upkeep is lazy in two steps: ``update`` only records a session's new votes; the first read
re-combines each changed key once (its run's parameters: enough for P, ``probability_of``, and
for ``safe``), and only a walk of the runs (``best_first``) moves the changed keys into their
runs' ordered key lists. A plan with no slot to fill (a saturated pool) never pays for ordering.

The bounds need normal (not subnormal) floats: ``safe`` turns the lazy walk off (the planner then
ranks from the proposals) when a probability is below 1e-100, a need time is not finite, or a need
time and ``now`` are both within 1e-100 of 0, or 0 < E < 1e-100.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import operator
from collections.abc import Collection, Iterable, Iterator, Mapping

from orchestrator.core.frontier import Candidate, Value, _candidate, _Vote, active_by_id, value
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

_MARGIN = 1e-9  # relative slack of the score bound over rounding (a few ulps, ~1e-16 each)
_TINY = 1e-100  # below this, products may be subnormal and the bounds lose their rigour
_SORTED = 256  # the most runs ``VoteIndex`` keeps in a sorted list (a heap beyond)

_Params = tuple[float, int, float, float]
"""(p, depth, T, step): what a key's value depends on besides ``now`` and E (its run)."""


def _combined(votes: Mapping[str, _Raw]) -> _Params:
    """A key's run parameters from its sessions' votes (``frontier._combine``'s arithmetic)."""
    if len(votes) == 1:
        (v,) = votes.values()
        return (v[1], v[2], v[3], v[5])
    best = [votes[sid] for sid in sorted(votes)]
    miss, t, depth, step = 1.0, best[0][3], best[0][2], best[0][5]
    for v in best:
        miss *= 1.0 - v[1]
        t, depth, step = min(t, v[3]), min(depth, v[2]), min(step, v[5])
    return (1.0 - miss, depth, t, step)


def _ub_s(p: float) -> float:
    return math.inf if p >= 1.0 else p / (1.0 - p) * (1.0 + _MARGIN)


def _order(params: _Params) -> tuple[float, float, float, int, float]:
    p, depth, t, step = params
    return (-_ub_s(p), -t, -p, depth, step)


def _odd(params: _Params) -> tuple[bool, bool]:
    """(p is tiny but positive or T not finite, T is tiny): see ``safe``."""
    p, _, t, _ = params
    return (0.0 < p < _TINY or not math.isfinite(t), abs(t) < _TINY)


class _KeyState:
    """One proposed key in the index: its votes by session, how many of its voters saw it ready
    or running (``Resolution.existing``), its run (None until settled, or once it has no
    votes) and the run whose ordered key list holds it (they differ until ``_place``)."""

    __slots__ = ("exists", "placed", "run", "voters")

    def __init__(self) -> None:
        self.voters: dict[str, _Raw] = {}
        self.exists = 0
        self.run: _Params | None = None
        self.placed: _Params | None = None  # the run whose ordered list holds it (``_place``)


class VoteIndex:
    """Every session's votes, every key's combination, and the keys grouped in runs.

    Args:
        max_depth, frames, timing: the ``Budget.max_depth``, ``PlanInput.frames`` and the
            ``Timing`` (only ``chunk_duration_s`` and ``think_s`` are read) votes are resolved
            with; an input with others does not ``fit``.
    """

    def __init__(self, max_depth: int, frames: int, timing: Timing) -> None:
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
        # key -> its votes, how many voters saw it ready or running, its run. One record per
        # key (not three dicts keyed alike): one read each, and a dict whose values are
        # records stays tracked by the garbage collector; a dict of plain tuples and ints is
        # untracked by a full collection and re-tracked, as a young object every young
        # collection walks (10^4 entries: milliseconds), at its next insert.
        self._keys: dict[Key, _KeyState] = {}
        self._runs: dict[_Params, SortedKeys] = {}  # run -> its placed keys, in order
        self._unplaced: set[Key] = set()  # settled keys not yet in their run's list (_place)
        # The runs in walk order (``_runs_in_order``), one of two ways. While there are few
        # (``_SORTED`` or fewer): ``_sorted``, every non-empty run with its order, sorted, kept
        # so by a bisection as a run is made or emptied (the order is time-free; a simulator
        # plans ~10^5 times over 10-130 runs, a few of which change between two plans:
        # rebuilding or sorting them per plan was a fifth of its plan). Otherwise (``_sorted``
        # None) a heap: a run is pushed when made and left there when emptied until the heap
        # is mostly such entries, then rebuilt; a walk reads it through a second heap.
        self._sorted: list[tuple[tuple[float, float, float, int, float], _Params]] | None = []
        self._heap: list[tuple[tuple[float, float, float, int, float], _Params]] = []
        self._heaped: set[_Params] = set()
        self._odd_p = 0
        self._odd_t = 0
        # Keys whose votes changed since their run was last computed. A key shared by n
        # sessions that all step before a plan would otherwise be re-combined (a sort of n
        # votes) n times: quadratic in the viewers at one node (the hits benchmark: 500
        # sessions on one cursor). Settled once per key before anything reads the runs.
        self._pending: set[Key] = set()
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
        """True when the lazy walk's bounds are rigorous for this ``now`` and E (module doc)."""
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

    def _settle(self) -> None:
        """Give every key whose votes changed its run's parameters (before P, ``safe`` or the
        contents are read). Moving keys between the runs' ordered key lists waits for a read
        of the runs (``_place``): a plan that starts no speculation (a full pool, the common
        case at scale) never orders them, and a key that changes run twice moves once."""
        if not self._pending:
            return
        pending, self._pending = self._pending, set()
        keys, unplaced = self._keys, self._unplaced
        for key in pending:
            state = keys[key]
            voters = state.voters
            params = _combined(voters) if voters else None
            old = state.run
            if params == old:
                if params is None and state.placed is None:
                    del keys[key]  # proposed and withdrawn between two settles
                continue
            # ``_count`` inlined for the usual case: a normal P and a normal, finite T.
            if old is not None and not (old[0] >= _TINY and _TINY <= abs(old[2]) < math.inf):
                self._count(old, -1)
            if params is not None and not (
                params[0] >= _TINY and _TINY <= abs(params[2]) < math.inf
            ):
                self._count(params, 1)
            state.run = params
            if params != state.placed:
                unplaced.add(key)
            else:
                unplaced.discard(key)
                if params is None:
                    del keys[key]  # no votes and in no run: gone
        # Bounded: dead keys wait in their runs only until they are a fraction of the index.
        if len(unplaced) > len(keys) // 2 + 4096:
            self._place()

    def _place(self) -> None:
        """Move every settled key to the ordered key list of its run (before the runs are read);
        a key without votes leaves its run and the index."""
        if not self._unplaced:
            return
        unplaced, self._unplaced = self._unplaced, set()
        keys, runs = self._keys, self._runs
        for key in unplaced:
            state = keys[key]
            old, params = state.placed, state.run
            if old == params:
                continue
            if old is not None:
                before = runs[old]
                before.remove(key)
                if not before:
                    del runs[old]
                    ordered = self._sorted
                    if ordered is not None:
                        i = bisect.bisect_left(ordered, (_order(old), old))
                        if i < len(ordered) and ordered[i][1] == old:
                            del ordered[i]
                        else:  # not found: a NaN put it out of order (never walked: ``safe``)
                            self._to_heap()
            state.placed = params
            if params is None:
                del keys[key]
                continue
            members = runs.get(params)
            if members is None:
                members = runs[params] = SortedKeys()
                ordered = self._sorted
                if ordered is not None:
                    if len(ordered) < _SORTED and params[0] == params[0] and params[2] == params[2]:
                        bisect.insort(ordered, (_order(params), params))
                    else:  # too many to keep sorted, or a NaN that no order holds
                        self._to_heap()
                elif params not in self._heaped:
                    self._heaped.add(params)
                    heapq.heappush(self._heap, (_order(params), params))
            members.add(key)
        if len(self._heap) > 2 * len(runs) + 8:  # mostly emptied runs (walked too): rebuild
            self._to_heap()

    def _to_heap(self) -> None:
        """Order the runs by a heap (built from every non-empty run), not the sorted list."""
        runs = self._runs
        self._sorted = None
        self._heap = [(_order(r), r) for r in runs]
        heapq.heapify(self._heap)
        self._heaped = set(runs)

    def _count(self, params: _Params, delta: int) -> None:
        odd_p, odd_t = _odd(params)
        self._odd_p += delta * odd_p
        self._odd_t += delta * odd_t

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

    def _runs_in_order(self) -> Iterator[_Params]:
        """Non-empty runs in the heap's order (``_order``, then the run): the sorted list
        itself, or a second heap over the heap without changing it."""
        if self._pending:  # (tested here: a plan's walk would mostly call them to do nothing)
            self._settle()
        if self._unplaced:
            self._place()
        ordered = self._sorted
        if ordered is None and len(self._runs) <= _SORTED // 2 and not self._odd_p:  # few again
            ordered = self._sorted = sorted((_order(r), r) for r in self._runs)
            self._heap, self._heaped = [], set()
        if ordered is not None:
            return map(operator.itemgetter(1), ordered)
        return self._heap_walk()

    def _heap_walk(self) -> Iterator[_Params]:
        """``_runs_in_order`` over many runs: a second heap over the heap's positions."""
        heap, runs = self._heap, self._runs
        n = len(heap)
        walk = [(heap[0], 0)] if n else []
        while walk:
            item, i = heapq.heappop(walk)
            for c in (2 * i + 1, 2 * i + 2):
                if c < n:
                    heapq.heappush(walk, (heap[c], c))
            if item[1] in runs:
                yield item[1]

    def best_first(self, inp: PlanInput, e: float, taken: Collection[Key]) -> Iterator[Candidate]:
        """``frontier.ranked(inp, index, collect_votes(...), taken)``, from the index (module
        doc); ``e`` is ``frontier.warm_gpu_s(inp)``. Call only when ``fits(inp)``,
        ``safe(inp.now, e)`` and ``holds(active sessions)``."""
        for key, _, _ in self.walk(inp, e, taken):
            yield self.candidate(key, inp, e)

    def parts(self) -> tuple[Iterator[_Params], dict[_Params, SortedKeys], dict[Key, _KeyState]]:
        """What ``walk`` reads, for a caller that walks the runs itself (``admit.admit_indexed``):
        the non-empty runs in order (``_runs_in_order``: settles and places the keys first),
        each run's ordered keys, and each key's state (``voters``, ``exists``). Read-only."""
        runs = self._runs_in_order()
        return runs, self._runs, self._keys

    def walk(
        self, inp: PlanInput, e: float, taken: Collection[Key], dropped: Collection[_Params] = (),
    ) -> Iterator[tuple[Key, _Params, Value]]:  # fmt: skip
        """``best_first``'s keys in its order, each with its run and the run's warm ``Value``
        (every key of a run has that value; ``candidate`` builds the ``Candidate``).

        ``dropped``: runs the caller has no more use for (it may add to it between two keys):
        their keys not yet yielded are skipped. The planner drops a run whose keys it would
        all refuse without effect (``plan._admit_indexed``), so a walk it cannot spend on costs
        one key per run, not one ``Candidate`` per key.

        ``admit.admit_indexed`` runs this same loop inline over ``parts()`` (a generator per
        plan and a tuple per key were ~5 % of a run): change both together;
        ``tests/unit/core/test_admit.py`` fails when they part.
        """
        now, budget = inp.now, inp.budget
        min_p, min_score = budget.min_probability, budget.min_benefit_per_gpu_s
        # ub_s is monotone in p: once below ub_s(min_p), no later run has p >= min_p.
        floor_s = _ub_s(min_p)
        # (-score, -benefit, -p, key, run, value, the run's keys after it or None when it has
        # no other); keys are unique across runs, so the comparison never reaches the run.
        exact: list[tuple[float, float, float, Key, _Params, Value, Iterator[Key] | None]] = []
        runs = self._runs_in_order()  # settles and places the keys first
        members_of, keys_state = self._runs, self._keys
        push, pop = heapq.heappush, heapq.heappop
        nxt = next(runs, None)
        while True:
            while nxt is not None:
                p, depth, t, step = nxt
                ub_s = math.inf if p >= 1.0 else p / (1.0 - p) * (1.0 + _MARGIN)  # _ub_s(p)
                if not ub_s > min_score or ub_s < floor_s:
                    nxt = None  # no run from here on passes the score (or the P) filter
                    break
                lead = t - now if t > now else 0.0
                if exact:
                    ub_b = (1.0 if p >= 1.0 else p * (1.0 + _MARGIN)) * (e if e < lead else lead)
                    # (best -score, -benefit) < (-ub_s, -ub_b), without building the tuples
                    best = exact[0]
                    if best[0] < -ub_s or (best[0] == -ub_s and best[1] < -ub_b):
                        break  # the best valued key ranks before every run not valued yet
                if p >= min_p:
                    v = value(p, lead, depth, step, e)
                    if v.score > min_score:
                        lists = members_of[nxt].lists
                        if len(lists) == 1 and len(lists[0]) == 1:  # a one-key run: no iterator
                            push(exact, (-v.score, -v.benefit_s, -p, lists[0][0], nxt, v, None))
                        else:
                            keys = iter(lists[0]) if len(lists) == 1 else itertools.chain(*lists)
                            first = next(keys)
                            push(exact, (-v.score, -v.benefit_s, -p, first, nxt, v, keys))
                nxt = next(runs, None)
            if not exact:
                return
            top = pop(exact)
            run = top[4]
            if dropped and run in dropped:
                continue  # the rest of the run goes with it
            key = top[3]
            if not (key in taken or keys_state[key].exists):  # de-duplication, as ``ranked``
                yield key, run, top[5]
                if dropped and run in dropped:
                    continue  # dropped on this key: its successor need not be queued
            rest = top[6]
            if rest is not None:
                following = next(rest, None)
                if following is not None:
                    push(exact, (top[0], top[1], top[2], following, run, top[5], rest))

    def candidate(self, key: Key, inp: PlanInput, e: float) -> Candidate:
        """The warm ``Candidate`` of a key ``walk`` yielded (``frontier._candidate``)."""
        return _candidate(key, self._clamped(key, inp.now), inp, e)

    def lead(self, key: Key) -> _Raw:
        """The vote a proposed key's start is attributed to (``Candidate.session_id`` and
        ``action``: the largest p, then the smallest depth, then the smallest session id)."""
        voters = self._keys[key].voters
        if len(voters) == 1:
            for v in voters.values():
                return v
        return min(voters.values(), key=lambda v: (-v[1], v[2], v[0]))

    def _clamped(self, key: Key, now: float) -> _Vote | dict[str, _Vote]:
        """The key's votes with need times clamped at ``now`` (``collect_votes``' form)."""
        out = {
            sid: (s, p, depth, t if t > now else now, action, step)
            for sid, (s, p, depth, t, action, step) in self._keys[key].voters.items()
        }
        if len(out) == 1:
            (v,) = out.values()
            return v
        return out
