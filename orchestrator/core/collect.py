"""Proposals resolved to chunk keys, each session's best vote per key: the plain path (pure).

Apart from ``frontier``'s ranking because it is the one pass over every proposal (10^5 with 10^4
sessions), tuned on its own: ``collect_votes`` turns proposals into votes, ``frontier.ranked``
and ``frontier.interests`` value them, and ``plan`` reads only the P of some keys
(``probability``). A proposal is a path of actions below a session's cursor; its last step
names one chunk key. The same key proposed by several sessions keeps one vote per session
(within one session the larger p counts: its proposals are not independent events); their
probabilities combine as ``1 - prod(1 - p_i)``. ``votes.VoteIndex`` keeps the same votes one
session at a time (``session_votes``, the same rules) for the planner's lazy path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence

from orchestrator.core.poses import PoseError
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import PlanInput, Proposal, SessionView, TreeNode

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


def probability(votes: _Vote | dict[str, _Vote]) -> float:
    """The combined P of one key's votes (``Candidate.probability``)."""
    if isinstance(votes, tuple):
        return votes[1]
    miss = 1.0
    for sid in sorted(votes):  # the order frontier._combine multiplies in
        miss *= 1.0 - votes[sid][1]
    return votes[next(iter(votes))][1] if len(votes) == 1 else 1.0 - miss
