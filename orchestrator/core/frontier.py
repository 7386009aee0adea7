"""The frontier: candidate chunks from policy proposals, valued and ranked (pure).

Source: DESIGN.md, "The value of a speculative chunk". A proposal is a path of actions below a
session's cursor; its last step names one chunk key. The same key proposed by several sessions
walking the same memory is one candidate whose probability combines as ``1 - prod(1 - p_i)``
(within one session the larger p counts: its proposals are not independent events).

This module holds the ``Candidate``, which sessions count (``active_by_id``: the idle ones get
no speculation) and the ranking of the plain path (``interests``, ``candidates``, ``ranked``).
The two parts it stands on are modules of their own: the marginal value of one start
(``valuation``: ``value``, E, S, need times; module doc there, steps 1-5) and the resolution of
proposals into votes (``collect``: ``collect_votes``, ``probability``). Their names are
re-exported here, where callers have long imported them.

For a combined candidate, depth, step and need time are those of the most urgent session (the
smallest; a conservative benefit) and the job is attributed to the session with the largest p.

Cost: ``collect_votes`` reads every proposal once (O(1) dict work each) and ``ranked`` values
every key without sorting them: it heapifies the ones that pass the filters and yields them best
first on demand, so the planner pays O(n + k log n) for the k candidates it looks at. ``ranked``
and ``interests`` value through the same ``value`` function, so a lazily ranked candidate is
bit-identical to the one ``interests`` + ``candidates`` give. This is the planner's path when
the input carries no usable vote index; with ``PlanInput.votes`` the planner calls neither:
``votes.VoteIndex`` keeps ``collect_votes``' result per session as the shell updates it (the
same rules, ``votes.session_votes``), and its ``best_first`` yields ``ranked``'s candidates in
the same order while valuing only the groups of equal-valued keys it has to (``vote_walk``
module doc).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import NamedTuple

from orchestrator.core.collect import Votes as Votes
from orchestrator.core.collect import _Vote as _Vote
from orchestrator.core.collect import collect_votes as collect_votes
from orchestrator.core.collect import probability as probability
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import Budget, PlanInput, SessionView, TreeNode
from orchestrator.core.valuation import Value as Value
from orchestrator.core.valuation import benefit_s as benefit_s
from orchestrator.core.valuation import expected_gpu_s as expected_gpu_s
from orchestrator.core.valuation import need_time as need_time
from orchestrator.core.valuation import step_s as step_s
from orchestrator.core.valuation import value as value
from orchestrator.core.valuation import warm_gpu_s as warm_gpu_s


class Candidate(NamedTuple):
    """One proposed chunk key, with its combined probability and value.

    A NamedTuple rather than a dataclass: ``interests`` builds one per proposed key (10^5 with
    10^4 sessions) and tuple construction is several times cheaper; ``ranked`` (the planner's
    path) builds one only for each candidate taken off its heap.

    Attributes:
        memory_id, parent_id, pose: the chunk key (parent is a ready node; pose canonical).
        action: the proposed action of the attributed session.
        session_id: the contributing session with the largest p (ties: smaller depth, id).
        sessions: every contributing session id, sorted.
        probability: combined P in [0, 1].
        depth: levels below the cursor (>= 1), smallest over contributing sessions.
        need_time: when the chunk is expected to be requested (seconds, >= now).
        expected_gpu_s: E, GPU-seconds one generation is expected to cost.
        benefit_s: expected seconds of wait saved by starting now rather than at the next
            decision point (``valuation`` module doc, step 2).
        score: benefit_s / waste_gpu_s (seconds saved per expected wasted GPU-second).
        waste_gpu_s: expected GPU-seconds wasted (``valuation`` module doc, step 3).
        charge_gpu_s: GPU-seconds the bucket is charged at the start (step 5).
        step_s: the attributed step S = chunk duration + think time (seconds).
    """

    memory_id: str
    parent_id: str
    pose: str
    action: str
    session_id: str
    sessions: tuple[str, ...]
    probability: float
    depth: int
    need_time: float
    expected_gpu_s: float
    benefit_s: float
    score: float
    waste_gpu_s: float = 0.0
    charge_gpu_s: float = 0.0
    step_s: float = 0.0

    @property
    def key(self) -> Key:
        """The chunk key (memory_id, parent_id, pose)."""
        return (self.memory_id, self.parent_id, self.pose)

    def sort_key(self) -> tuple[float, float, float, str, str, str]:
        """Ranking: score desc, then benefit desc (candidates that waste nothing all score inf:
        the one saving more wait goes first), then P desc, then memory, parent, pose."""
        return (-self.score, -self.benefit_s, -self.probability, self.memory_id, self.parent_id,
                self.pose)  # fmt: skip


def idle_after_s(session: SessionView, budget: Budget) -> float:
    """Seconds of inactivity after which the session gets no speculation: the smaller of
    ``budget.idle_timeout_s`` and the session's own ``idle_after_s`` (viewer gone)."""
    own = session.idle_after_s
    return budget.idle_timeout_s if own is None else min(own, budget.idle_timeout_s)


def is_idle(session: SessionView, now: float, budget: Budget) -> bool:
    """True when the session has been inactive longer than ``idle_after_s``."""
    return now - session.last_active_at > idle_after_s(session, budget)


def active_by_id(inp: PlanInput) -> dict[str, SessionView]:
    """Non-idle sessions by id (any order); of duplicated ids the most recently active one counts.

    The order-free form of ``active_sessions``: one dict pass when ids are unique (the usual
    case), the sort only when some id is duplicated.
    """
    now, timeout = inp.now, inp.budget.idle_timeout_s
    latest = {s.session_id: s for s in inp.sessions}
    if len(latest) != len(inp.sessions):
        latest = {}
        for s in sorted(
            inp.sessions,
            key=lambda s: (s.session_id, s.last_active_at, s.watch_started_at, s.cursor_chunk_id),
        ):
            latest[s.session_id] = s
    # ``is_idle`` inlined: now - last_active_at > min(own, timeout), min's operand order kept.
    return {
        sid: s
        for sid, s in latest.items()
        if not now - s.last_active_at
        > (timeout if (own := s.idle_after_s) is None or timeout < own else own)
    }


def active_sessions(inp: PlanInput) -> tuple[SessionView, ...]:
    """Non-idle sessions sorted by id; of duplicated ids the most recently active one counts."""
    return tuple(s for _, s in sorted(active_by_id(inp).items()))


def revalue(c: Candidate, inp: PlanInput, cold: float) -> Candidate:
    """``c`` valued again for a start that pays ``cold`` seconds of cold start (``value``)."""
    if cold <= 0.0:
        return c
    e = warm_gpu_s(inp)
    v = value(c.probability, c.need_time - inp.now, c.depth, c.step_s, e, cold)
    return c._replace(expected_gpu_s=e + cold, benefit_s=v.benefit_s, score=v.score,
                      waste_gpu_s=v.waste_gpu_s, charge_gpu_s=v.charge_gpu_s)  # fmt: skip


def _combine(
    key: Key, votes: dict[str, _Vote], inp: PlanInput, e: float, cold: float = 0.0
) -> Candidate:
    # Session-id order fixes the float product's order: shuffled input gives bit-identical P.
    best = [votes[sid] for sid in sorted(votes)]
    lead = best[0]
    miss, need, depth, step = 1.0, lead[3], lead[2], lead[5]
    for v in best:
        miss *= 1.0 - v[1]
        need, depth, step = min(need, v[3]), min(depth, v[2]), min(step, v[5])
        if (-v[1], v[2], v[0]) < (-lead[1], lead[2], lead[0]):
            lead = v
    p = lead[1] if len(best) == 1 else 1.0 - miss
    return _valued(key, lead[0], tuple(v[0] for v in best), lead[4], p, depth, need, step,
                   inp.now, e, cold)  # fmt: skip


def _valued(
    key: Key, sid: str, sessions: tuple[str, ...], action: str, p: float, depth: int,
    need: float, step: float, now: float, e: float, cold: float,
) -> Candidate:  # fmt: skip
    memory_id, parent_id, pose = key
    assert parent_id is not None  # proposals name children, never a root
    v = value(p, need - now, depth, step, e, cold)
    return Candidate(
        memory_id=memory_id,
        parent_id=parent_id,
        pose=pose,
        action=action,
        session_id=sid,
        sessions=sessions,
        probability=p,
        depth=depth,
        need_time=need,
        expected_gpu_s=e + cold,
        benefit_s=v.benefit_s,
        score=v.score,
        waste_gpu_s=v.waste_gpu_s,
        charge_gpu_s=v.charge_gpu_s,
        step_s=step,
    )


def _candidate(
    key: Key, votes: _Vote | dict[str, _Vote], inp: PlanInput, e: float, cold: float = 0.0
) -> Candidate:
    """The valued candidate of one key (``_combine`` without its work for a single session);
    ``cold`` is the cold start this start would pay (``PlanInput.warm_idle``)."""
    if not isinstance(votes, tuple):
        return _combine(key, votes, inp, e, cold)
    sid, p, depth, need, action, step = votes
    return _valued(key, sid, (sid,), action, p, depth, need, step, inp.now, e, cold)


def interests(
    inp: PlanInput, index: TreeIndex, sessions: Iterable[SessionView]
) -> dict[Key, Candidate]:
    """Every chunk key proposed for ``sessions`` (pass the active ones), combined and valued.

    Includes keys that already exist (ready or running): the planner also uses this to value
    running speculative jobs. Proposals are dropped when their session is not in ``sessions``,
    their path is empty or deeper than ``budget.max_depth``, an action is unknown, P is not
    finite, or the target's parent is not a ready node. No filtering by P or score here.
    """
    e = warm_gpu_s(inp)
    votes = collect_votes(inp, index, {s.session_id: s for s in sessions})
    return {key: _candidate(key, v, inp, e) for key, v in votes.items()}


def candidates(
    inp: PlanInput,
    index: TreeIndex,
    valued: Mapping[Key, Candidate],
    taken: frozenset[Key] | set[Key] = frozenset(),
) -> list[Candidate]:
    """The chunks worth starting, best first (``Candidate.sort_key``).

    Drops keys that exist as ready or running nodes or are in ``taken`` (e.g. running jobs, this
    plan's demand starts): de-duplication; P < ``budget.min_probability``; and
    score <= ``budget.min_benefit_per_gpu_s`` (a policy that cannot help spends nothing).
    """
    out: list[Candidate] = []
    for key, c in valued.items():
        node = index.by_key(*key)
        if key in taken or (node is not None and node.state != "failed"):
            continue
        if c.probability < inp.budget.min_probability:
            continue
        if c.score <= inp.budget.min_benefit_per_gpu_s:
            continue
        out.append(c)
    out.sort(key=Candidate.sort_key)
    return out


def ranked(
    inp: PlanInput,
    index: TreeIndex,
    votes: Votes,
    taken: Collection[Key] = frozenset(),
) -> Iterator[Candidate]:
    """``candidates(inp, index, interests(...), taken)``, lazily: best first, built on demand.

    Same filters and the same order (``Candidate.sort_key``: keys are unique, so the order is
    total). Each key's score is computed once from its votes and the keys that pass the P and
    score filters are heapified in O(n). The filters on ``taken`` and on existing chunks, and
    the ``Candidate``, apply only to the keys the caller pulls off the heap (neither filter
    depends on the order, so applying it late changes nothing).
    """
    now, budget = inp.now, inp.budget
    min_p, min_score = budget.min_probability, budget.min_benefit_per_gpu_s
    e = warm_gpu_s(inp)
    heap: list[tuple[float, float, float, Key, _Vote | dict[str, _Vote]]] = []
    for key, v in votes.items():
        if isinstance(v, tuple):
            p, depth, need, step = v[1], v[2], v[3], v[5]
            if p < min_p:
                continue
            benefit, _, _, score = value(p, need - now, depth, step, e)
        else:
            c = _combine(key, v, inp, e)
            p, score, benefit = c.probability, c.score, c.benefit_s
            if p < min_p:
                continue
        if score > min_score:
            heap.append((-score, -benefit, -p, key, v))
    heapq.heapify(heap)
    existing: Mapping[Key, TreeNode] | None = None
    while heap:
        _, _, _, key, v = heapq.heappop(heap)
        if key in taken:
            continue
        if existing is None:  # one lookup for this key and every key the heap may still yield
            existing = index.by_keys(itertools.chain((key,), (item[3] for item in heap)))
        node = existing.get(key)
        if node is not None and node.state != "failed":
            continue  # generated or being generated: de-duplication
        yield _candidate(key, v, inp, e)
