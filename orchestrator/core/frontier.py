"""The frontier: candidate chunks from policy proposals, and their marginal value (pure).

Source: DESIGN.md, "The value of a speculative chunk". A proposal is a path of actions below a
session's cursor; its last step names one chunk key. The same key proposed by several sessions
walking the same memory is one candidate whose probability combines as ``1 - prod(1 - p_i)``
(within one session the larger p counts: its proposals are not independent events).

Marginal value of starting candidate x now (``value``; all times in seconds, costs in GPU-s)
------------------------------------------------------------------------------------------

Notation: ``P`` its probability; ``E = expected_gpu_s(timing)`` the generation time;
``C`` the cold start this very start would pay (0 on a warm container, ``Timing.cold_start_s``
once ``PlanInput.warm_idle`` is used up); ``S = chunk_duration_s + think_s`` the session's step
(its own think time when the live state estimated one, ``SessionView.think_s``); depth d;
``L = need_time - now`` the lead, with ``need_time = max(now, watch_started_at + d * S)``.

1. Saving of a chunk started with lead ``l``: it is ready ``C + E`` after the start, a demand
   job takes ``E`` (the demand lands on the container speculation would have booted, or a warm
   one), so ``saved(l) = max(0, min(E, l - C))`` seconds of wait.
2. The alternative to starting now is not "never" but "at the next decision point": for d = 1
   that is the request itself (a demand: lead 0); for d >= 2 it is the viewer's request of the
   parent, after which the lead is ``min(L, S)``, and the guess is known one level better.
   Waiting is worth only what it can reveal, so the deferred saving is weighted by ``1 - P``
   (a certain chunk, P = 1, starts as early as the serial chain allows):
   ``benefit_s = P * max(0, saved(L) - (1 - P) * min(E, L, S))`` for d >= 2 (the deferred start
   valued warm, like the demand) and ``P * saved(L)`` for d = 1. An uncertain grandchild is
   worth starting now mostly for the lead time it gains over waiting one step: when
   ``E <= S`` (short chunks) that gain is ~0 and speculation stays one level deep; when
   ``E >> S`` (A100) each level gains a full ``S``. This is how depth follows (G, W).
3. The real extra cost: a correct guess would have been generated on demand anyway, so only a
   wrong one is waste, and it is cancelled when the viewer's choice reveals it (the core's
   reachability rule): it runs ``run = min(C + E, L)`` before its fate is known. The cold
   load is paid even by a correct guess (a demand would not have booted a container). So
   ``waste_gpu_s = (1 - P) * run + P * min(C, L)`` (an upper bound for d >= 2: a viewer who
   leaves the branch one level up cancels it sooner).
4. ``score = benefit_s / waste_gpu_s``: expected seconds of wait saved per expected wasted
   GPU-second; ``inf`` when nothing can be wasted (P = 1, no cold start) but wait is saved, 0
   when nothing is saved. For d = 1 on a warm container both terms carry ``min(E, L)``, so
   ``score = P / (1 - P)``, the odds: the threshold ``Budget.min_benefit_per_gpu_s`` = t
   admits a depth-1 guess with P > t / (1 + t) in every regime, which is the point of having
   one exchange rate between viewer seconds and GPU-seconds.
5. ``charge_gpu_s = run`` is taken from the token bucket at the start; the live state gives it
   back when the chunk is requested (hit or in-flight hit: not waste) and the planner gives
   back the part not run when it cancels the job. The bucket therefore meters waste, and the
   default 2 GPU-s/s is a cap on wasted GPU time, not on correct guesses.

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
the same order while valuing only the groups of equal-valued keys it has to (``votes`` module
doc).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from orchestrator.core.poses import PoseError
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import Budget, PlanInput, Proposal, SessionView, Timing, TreeNode


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
            decision point (module doc, step 2).
        score: benefit_s / waste_gpu_s (seconds saved per expected wasted GPU-second).
        waste_gpu_s: expected GPU-seconds wasted (module doc, step 3).
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


def expected_gpu_s(timing: Timing) -> float:
    """E = gpu_s_per_chunk + cold_start_s (GPU-seconds; never negative).

    The cold start is part of E for callers that do not know which containers are warm
    (``PlanInput.warm_idle`` None): every start, speculative or demand, is assumed to pay it.
    """
    return max(0.0, timing.gpu_s_per_chunk + timing.cold_start_s)


def warm_gpu_s(inp: PlanInput) -> float:
    """E of a start on a warm container: ``expected_gpu_s`` when warmth is unknown, else G."""
    if inp.warm_idle is None:
        return expected_gpu_s(inp.timing)
    return max(0.0, inp.timing.gpu_s_per_chunk)


def step_s(session: SessionView, timing: Timing) -> float:
    """S = chunk_duration_s + think time (the session's estimate, else ``timing.think_s``)."""
    think = timing.think_s if session.think_s is None else session.think_s
    return timing.chunk_duration_s + max(0.0, think)


def need_time(session: SessionView, depth: int, timing: Timing, now: float) -> float:
    """When a depth-``depth`` descendant of the cursor is expected to be requested (seconds).

    ``max(now, watch_started_at + depth * step_s(session, timing))``.
    """
    return max(now, session.watch_started_at + depth * step_s(session, timing))


class Value(NamedTuple):
    """``value``'s result: seconds saved, GPU-seconds expected wasted and charged, and score."""

    benefit_s: float
    waste_gpu_s: float
    charge_gpu_s: float
    score: float


def value(p: float, lead: float, depth: int, step: float, e: float, cold: float = 0.0) -> Value:
    """Marginal value of starting a candidate now (module doc, steps 1-5).

    Args:
        p: its probability, in [0, 1].
        lead: ``need_time - now`` (seconds, >= 0).
        depth: levels below the cursor (>= 1).
        step: the session's step S (seconds).
        e: generation time E on a warm container (GPU-seconds).
        cold: cold-start seconds this start would pay (0 on a warm container).

    Example: P 0.6, depth 1, lead 13 s, E 210: benefit 7.8 s, waste 5.2 GPU-s, charge 13,
    score 1.5 (= 0.6 / 0.4).

    ``admit._warm_value`` repeats this arithmetic for cold 0 on the planner's hot path: change
    both together (``tests/unit/core/test_admit.py`` compares them bit for bit).
    """
    saved = lead - cold
    if saved > e:
        saved = e
    if not saved > 0.0:
        saved = 0.0
    if depth >= 2:
        # Deferred to the parent's request: then the lead is one step (or what is left of it);
        # the deferred start is valued warm, as the demand is.
        later = step if step < lead else lead
        if later > e:
            later = e
        if later > 0.0:
            saved -= (1.0 - p) * later  # waiting is worth only what it can reveal
        if not saved > 0.0:
            saved = 0.0
    benefit = p * saved if saved > 0.0 else 0.0
    run = cold + e
    if lead < run:
        run = lead if lead > 0.0 else 0.0
    load = cold if cold < run else run
    waste = (1.0 - p) * run + p * load
    nothing_wasted = math.inf if benefit > 0.0 else 0.0
    score = benefit / waste if waste > 0.0 else nothing_wasted
    return Value(benefit, waste, run, score)


def benefit_s(
    probability: float, need: float, now: float, timing: Timing, depth: int = 1,
    step: float | None = None,
) -> float:  # fmt: skip
    """Expected seconds of wait saved by starting now (``value(...).benefit_s``, warm start).

    With depth 1: ``P * min(E, need - now)`` (0 when the need time has passed).
    """
    s = timing.chunk_duration_s + timing.think_s if step is None else step
    lead = need - now
    return value(probability, lead if lead > 0.0 else 0.0, depth, s, expected_gpu_s(timing))[0]


_Vote = tuple[str, float, int, float, str, float]
"""(session_id, probability, depth, need_time, action, step_s): one session's proposal."""

Votes = dict[Key, "_Vote | dict[str, _Vote]"]
"""Chunk key -> the one session's vote when a single session proposed it (the usual case), else
session id -> that session's vote. Each session's vote is its largest p, then smallest depth,
then smallest action."""

_INVALID = ""  # pose cache marker: the action is not one ``poses.action_to_pose`` accepts


def collect_votes(
    inp: PlanInput,
    index: TreeIndex,
    sessions: Mapping[str, SessionView],
    want: Collection[tuple[str, int, str]] | None = None,
) -> Votes:
    """Resolve proposals to chunk keys and keep each session's best vote per key.

    Args:
        inp: supplies proposals, now, timing, frames and ``budget.max_depth``.
        index: the tree snapshot.
        sessions: the sessions whose proposals count (pass the active ones), by id.
        want: when given, only proposals whose (session id, depth, last pose) is in ``want``
            are resolved: the planner's shortcut for valuing just its running speculative jobs
            (a proposal can only name a key whose pose its last step has, from a cursor exactly
            depth - 1 levels above the key's parent). Keys outside the wanted set may then be
            missing votes: read only the keys ``want`` was built for.

    Proposals are dropped when their session is not in ``sessions``, their path is empty or
    deeper than ``budget.max_depth``, an action is unknown, P is not finite, or the target's
    parent is not a ready node (generation is serial).
    """
    max_depth = inp.budget.max_depth
    now, frames = inp.now, inp.frames
    duration, think = inp.timing.chunk_duration_s, inp.timing.think_s
    pose = _Memo(_pose_or_invalid(index, frames))  # action -> canonical pose, or _INVALID
    # The loop below is the planner's hot path (one pass per proposal, 10^5 with 10^4 sessions):
    # dict reads are bound to locals and the one- and two-step paths are resolved inline, with
    # the same lookups as ``TreeIndex.last_step``.
    node_of = index.id_index().get if want is None else index.node
    isfinite = math.isfinite
    proposals: Sequence[Proposal] = inp.proposals
    node_by_key: Callable[[Key], TreeNode | None]
    if want is None:
        node_by_key = index.key_index().get if max_depth >= 2 else _no_node
    else:
        # One pass keeps the proposals ``want`` names (``wanted_pose`` rules out with one dict
        # read an action whose pose no wanted key has); their first steps are then looked up
        # with one filtered scan rather than an index over every node's key.
        wanted_sessions = {sid for sid, _, _ in want}
        wanted_poses = {q for _, _, q in want}
        wanted_pose = _Memo(lambda a: pose[a] if pose[a] in wanted_poses else _INVALID)
        proposals = [
            prop
            for prop in proposals
            if prop.session_id in wanted_sessions
            and prop.path
            and (q := wanted_pose[prop.path[-1]])
            and (prop.session_id, len(prop.path), q) in want
        ]
        firsts = {
            (s.memory_id, s.cursor_chunk_id, pose[prop.path[0]])
            for prop in proposals
            if len(prop.path) == 2 and (s := sessions.get(prop.session_id)) is not None
        }
        node_by_key = index.by_keys(firsts).get if firsts else _no_node
    votes: Votes = {}
    for prop in proposals:
        session = sessions.get(prop.session_id)
        if session is None:
            continue
        path = prop.path
        depth = len(path)
        if not 1 <= depth <= max_depth:
            continue
        action = path[-1]
        last = pose[action]
        p = prop.probability
        if not isfinite(p) or not last:
            continue
        memory_id = session.memory_id
        if depth == 1:
            parent = node_of(session.cursor_chunk_id)
        elif depth == 2:
            first = pose[path[0]]
            if not first:
                continue
            parent = node_by_key((memory_id, session.cursor_chunk_id, first))
        else:
            if not all(pose[a] for a in path):
                continue
            parent, _ = index.last_step(memory_id, session.cursor_chunk_id, tuple(path), frames)
        if parent is None or parent.state != "ready":
            continue  # generation is serial: the chunk needs its parent's last frame
        key = (memory_id, parent.chunk_id, last)
        # p clamped to [0, 1] and need_time(), as min(1, max(0, p)) and max(now, t) give them.
        if not p > 0.0:
            p = 0.0
        elif p >= 1.0:
            p = 1.0
        own = session.think_s
        step = duration + (think if own is None else (own if own > 0.0 else 0.0))
        need = session.watch_started_at + depth * step
        if not need > now:
            need = now
        sid = session.session_id
        vote = (sid, p, depth, need, action, step)
        old = votes.get(key)
        if old is None:
            votes[key] = vote
        elif isinstance(old, tuple):
            if old[0] != sid:
                votes[key] = {old[0]: old, sid: vote}
            elif (-p, depth, action) < (-old[1], old[2], old[4]):
                votes[key] = vote
        else:
            mine = old.get(sid)
            if mine is None or (-p, depth, action) < (-mine[1], mine[2], mine[4]):
                old[sid] = vote
    return votes


class _Memo(dict[str, str]):
    """A dict that fills itself: ``memo[k]`` is ``fn(k)``, computed on the first read only
    (``__missing__``), so hot loops read it with a plain subscript."""

    def __init__(self, fn: Callable[[str], str]) -> None:
        super().__init__()
        self._fn = fn

    def __missing__(self, key: str) -> str:
        value = self[key] = self._fn(key)
        return value


def _pose_or_invalid(index: TreeIndex, frames: int) -> Callable[[str], str]:
    """Action -> canonical pose, ``_INVALID`` for one ``poses.action_to_pose`` rejects."""

    def convert(action: str) -> str:
        try:
            return index.pose_of(action, frames)
        except (PoseError, ValueError):
            return _INVALID  # a policy bug must not stall planning

    return convert


def _no_node(key: Key) -> TreeNode | None:
    return None


def revalue(c: Candidate, inp: PlanInput, cold: float) -> Candidate:
    """``c`` valued again for a start that pays ``cold`` seconds of cold start (``value``)."""
    if cold <= 0.0:
        return c
    e = warm_gpu_s(inp)
    v = value(c.probability, c.need_time - inp.now, c.depth, c.step_s, e, cold)
    return c._replace(expected_gpu_s=e + cold, benefit_s=v.benefit_s, score=v.score,
                      waste_gpu_s=v.waste_gpu_s, charge_gpu_s=v.charge_gpu_s)  # fmt: skip


def probability(votes: _Vote | dict[str, _Vote]) -> float:
    """The combined P of one key's votes (``Candidate.probability``)."""
    if isinstance(votes, tuple):
        return votes[1]
    miss = 1.0
    for sid in sorted(votes):  # the order _combine multiplies in
        miss *= 1.0 - votes[sid][1]
    return votes[next(iter(votes))][1] if len(votes) == 1 else 1.0 - miss


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
