"""A vote index's keys grouped in runs, and the runs kept in their walk order (pure).

Apart from ``votes`` because it is the index's data structure, below its sessions:
``votes.VoteIndex`` records which session votes for which key (``update``, ``drop``) and
``vote_walk.LazyWalk`` walks the runs best first; ``KeyRuns``, the base of both, holds every
proposed key's votes and run, every run's keys in order, and the runs in their order.

A key's run is (p, depth, T, step) (``_Params``, from its votes by ``_combined``): what its
value depends on besides ``now`` and E, so the keys of one run have bit-identical values. The
runs' order (-ub_s, -T, -p, depth, step) (``_order``; ``vote_walk`` module doc for the bounds)
is time-free. While there are at most ``_SORTED`` runs (a simulator's 10-130) they are kept in
a sorted list instead of a heap, updated by bisection as a run is made or emptied, so a walk
reads them in order with no heap work at all.

Upkeep is lazy in two steps: ``VoteIndex.update`` only records a session's new votes
(``_pending``); the first read re-combines each changed key once (``_settle``: its run's
parameters, enough for P, ``VoteIndex.probability_of``, and for ``VoteIndex.safe``), and only a
walk of the runs (``_runs_in_order``) moves the changed keys into their runs' ordered key lists
(``_place``). A plan with no slot to fill (a saturated pool) never pays for ordering.
"""

from __future__ import annotations

import bisect
import heapq
import math
import operator
from collections.abc import Iterator, Mapping

from orchestrator.core.session_votes import _Raw
from orchestrator.core.sorted_keys import SortedKeys
from orchestrator.core.tree import Key

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
    """(p is tiny but positive or T not finite, T is tiny): see ``VoteIndex.safe``."""
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


class KeyRuns:
    """Every proposed key's votes and run, and the keys grouped in runs kept in walk order (the
    base of ``votes.VoteIndex``; module doc)."""

    def __init__(self) -> None:
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
