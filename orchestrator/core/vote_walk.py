"""A vote index's lazy walk: ``frontier.ranked``'s candidates, in its order, valuing only the
runs it has to (pure).

Apart from ``vote_runs`` (the keys and runs it reads) and ``votes`` (how sessions' votes get
there) because it is the one read whose cost is per plan and whose order must match
``frontier.ranked`` bit for bit: ``LazyWalk`` is ``votes.VoteIndex``'s base for ``walk``,
``best_first`` and what a start is built from (``candidate``, ``lead``).

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
builds the ``Candidate`` of each. Cost per plan: O((r + k) log r) for the r runs valued and the
k keys yielded, instead of every proposal and key.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Iterator

from orchestrator.core.collect import _Vote
from orchestrator.core.frontier import Candidate, _candidate
from orchestrator.core.session_votes import _Raw
from orchestrator.core.sorted_keys import SortedKeys
from orchestrator.core.tree import Key
from orchestrator.core.types import PlanInput
from orchestrator.core.valuation import Value, value
from orchestrator.core.vote_runs import _MARGIN, KeyRuns, _KeyState, _Params, _ub_s


class LazyWalk(KeyRuns):
    """``KeyRuns`` walked best first (module doc; the base of ``votes.VoteIndex``)."""

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
        all refuse without effect (``admit.admit_indexed``), so a walk it cannot spend on costs
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
