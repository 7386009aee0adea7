"""The frontier: candidate chunks from policy proposals, and their value (pure, deterministic).

Source: DESIGN.md, "The value of a speculative chunk". A proposal is a path of actions below a
session's cursor; its last step names one chunk key. The same key proposed by several sessions
walking the same memory is one candidate whose probability combines as ``1 - prod(1 - p_i)``
(within one session the larger p counts: its proposals are not independent events).

Value of a candidate x at depth d below its session's cursor (all times in seconds):

- ``E = gpu_s_per_chunk + cold_start_s``: expected time from start to ready. A speculative job
  and a later demand job for x face the same pool, so the cold start is part of both; it is
  therefore not a saving by itself (a policy gains nothing by starting early what would be
  requested now).
- ``need_time(x) = max(now, watch_started_at + d * (chunk_duration_s + think_s))``: the viewer
  watches the cursor for ``chunk_duration_s``, thinks ``think_s``, requests the depth-1 child,
  and so on; a depth-d descendant is requested after d such steps (no waits assumed).
- ``wait_on_demand = E``; ``wait_if_started_now = max(0, now + E - need_time)``.
- ``benefit_s = P * (wait_on_demand - wait_if_started_now) = P * min(E, need_time - now)``.
- ``expected_gpu_s = E`` (GPU-seconds charged to the bucket).
- ``score = benefit_s / expected_gpu_s``: expected seconds of wait saved per GPU-second; 0 when
  ``E <= 0`` (nothing to save).

For a combined candidate, depth and need time are those of the most urgent session (the
smallest; a conservative benefit) and the job is attributed to the session with the largest p.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from orchestrator.core.poses import PoseError
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import Budget, PlanInput, SessionView, Timing


class Candidate(NamedTuple):
    """One proposed chunk key, with its combined probability and value.

    A NamedTuple rather than a dataclass: plan() builds one per proposed key (10^5 with 10^4
    sessions) and tuple construction is several times cheaper.

    Attributes:
        memory_id, parent_id, pose: the chunk key (parent is a ready node; pose canonical).
        action: the proposed action of the attributed session.
        session_id: the contributing session with the largest p (ties: smaller depth, id).
        sessions: every contributing session id, sorted.
        probability: combined P in [0, 1].
        depth: levels below the cursor (>= 1), smallest over contributing sessions.
        need_time: when the chunk is expected to be requested (seconds, >= now).
        expected_gpu_s: E, GPU-seconds one generation is expected to cost.
        benefit_s: expected seconds of wait saved by starting now.
        score: benefit_s / expected_gpu_s (seconds saved per GPU-second).
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

    @property
    def key(self) -> Key:
        """The chunk key (memory_id, parent_id, pose)."""
        return (self.memory_id, self.parent_id, self.pose)

    def sort_key(self) -> tuple[float, float, str, str, str]:
        """Ranking: score desc, then P desc, then memory, parent, pose (total order)."""
        return (-self.score, -self.probability, self.memory_id, self.parent_id, self.pose)


def is_idle(session: SessionView, now: float, budget: Budget) -> bool:
    """True when the session has been inactive longer than ``budget.idle_timeout_s``."""
    return now - session.last_active_at > budget.idle_timeout_s


def active_sessions(inp: PlanInput) -> tuple[SessionView, ...]:
    """Non-idle sessions sorted by id; of duplicated ids the most recently active one counts."""
    latest: dict[str, SessionView] = {}
    for s in sorted(
        inp.sessions,
        key=lambda s: (s.session_id, s.last_active_at, s.watch_started_at, s.cursor_chunk_id),
    ):
        latest[s.session_id] = s
    return tuple(s for _, s in sorted(latest.items()) if not is_idle(s, inp.now, inp.budget))


def expected_gpu_s(timing: Timing) -> float:
    """E = gpu_s_per_chunk + cold_start_s (GPU-seconds; never negative)."""
    return max(0.0, timing.gpu_s_per_chunk + timing.cold_start_s)


def need_time(session: SessionView, depth: int, timing: Timing, now: float) -> float:
    """When a depth-``depth`` descendant of the cursor is expected to be requested (seconds).

    ``max(now, watch_started_at + depth * (chunk_duration_s + think_s))``.
    """
    step = timing.chunk_duration_s + timing.think_s
    return max(now, session.watch_started_at + depth * step)


def benefit_s(probability: float, need: float, now: float, timing: Timing) -> float:
    """Expected seconds of wait saved by starting now: ``P * (E - max(0, now + E - need))``."""
    e = expected_gpu_s(timing)
    wait_if_started_now = max(0.0, now + e - need)
    return max(0.0, probability * (e - wait_if_started_now))


_Vote = tuple[str, float, int, float, str]
"""(session_id, probability, depth, need_time, action): one session's proposal for a key."""


def _target(
    index: TreeIndex, session: SessionView, path: tuple[str, ...], frames: int
) -> tuple[Key, str] | None:
    """The chunk key and action a path's last step names, if every step above it is ready."""
    try:
        parent, pose = index.last_step(session.memory_id, session.cursor_chunk_id, path, frames)
    except (PoseError, ValueError):
        return None  # a policy bug must not stall planning; the action is simply not valued
    if parent is None or parent.state != "ready":
        return None  # generation is serial: the chunk needs its parent's last frame
    return (session.memory_id, parent.chunk_id, pose), path[-1]


def _votes(
    inp: PlanInput, index: TreeIndex, sessions: Iterable[SessionView]
) -> dict[Key, dict[str, _Vote]]:
    """Chunk key -> session id -> that session's vote (its largest p, then smallest depth)."""
    by_id = {s.session_id: s for s in sessions}
    max_depth = inp.budget.max_depth
    # Sessions on one memory often share a cursor: resolve each (cursor, path) once.
    targets: dict[tuple[str, str, tuple[str, ...]], tuple[Key, str] | None] = {}
    votes: dict[Key, dict[str, _Vote]] = {}
    for prop in inp.proposals:
        session = by_id.get(prop.session_id)
        depth = len(prop.path)
        if session is None or not 1 <= depth <= max_depth or not math.isfinite(prop.probability):
            continue
        path = tuple(prop.path)  # hashable even if a policy hands over a list
        memo = (session.memory_id, session.cursor_chunk_id, path)
        if memo in targets:
            target = targets[memo]
        else:
            target = targets[memo] = _target(index, session, path, inp.frames)
        if target is not None:
            p = min(1.0, max(0.0, prop.probability))
            need = need_time(session, depth, inp.timing, inp.now)
            vote = (session.session_id, p, depth, need, target[1])
            per_session = votes.setdefault(target[0], {})
            old = per_session.get(session.session_id)
            if old is None or (-p, depth, target[1]) < (-old[1], old[2], old[4]):
                per_session[session.session_id] = vote
    return votes


def _combine(key: Key, votes: dict[str, _Vote], inp: PlanInput, e: float) -> Candidate:
    # Session-id order fixes the float product's order: shuffled input gives bit-identical P.
    best = [votes[sid] for sid in sorted(votes)]
    lead = best[0]
    miss, need, depth = 1.0, lead[3], lead[2]
    for v in best:
        miss *= 1.0 - v[1]
        need, depth = min(need, v[3]), min(depth, v[2])
        if (-v[1], v[2], v[0]) < (-lead[1], lead[2], lead[0]):
            lead = v
    p = lead[1] if len(best) == 1 else 1.0 - miss
    benefit = benefit_s(p, need, inp.now, inp.timing)
    memory_id, parent_id, pose = key
    assert parent_id is not None  # proposals name children, never a root
    return Candidate(
        memory_id=memory_id,
        parent_id=parent_id,
        pose=pose,
        action=lead[4],
        session_id=lead[0],
        sessions=tuple(v[0] for v in best),
        probability=p,
        depth=depth,
        need_time=need,
        expected_gpu_s=e,
        benefit_s=benefit,
        score=benefit / e if e > 0 else 0.0,
    )


def interests(
    inp: PlanInput, index: TreeIndex, sessions: Iterable[SessionView]
) -> dict[Key, Candidate]:
    """Every chunk key proposed for ``sessions`` (pass the active ones), combined and valued.

    Includes keys that already exist (ready or running): the planner also uses this to value
    running speculative jobs. Proposals are dropped when their session is not in ``sessions``,
    their path is empty or deeper than ``budget.max_depth``, an action is unknown, P is not
    finite, or the target's parent is not a ready node. No filtering by P or score here.
    """
    e = expected_gpu_s(inp.timing)
    return {key: _combine(key, v, inp, e) for key, v in _votes(inp, index, sessions).items()}


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
