"""One session's proposals resolved to chunk keys (``frontier.collect_votes``' rules, one
session at a time): the unit ``votes.VoteIndex`` keeps and updates (pure).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import NamedTuple

from orchestrator.core.poses import PoseError, action_to_pose
from orchestrator.core.tree import Key
from orchestrator.core.types import Proposal, SessionView, Timing, TreeNode

_Raw = tuple[str, float, int, float, str, float]
"""(session_id, p, depth, T, action, step_s): one session's vote with its need time T unclamped
(``frontier._Vote`` clamps it at ``now``)."""

NodeOf = Callable[[str], TreeNode | None]
"""Chunk id -> the core's node (None when absent, or not given to the core)."""
NodeByKey = Callable[[Key], TreeNode | None]
"""Chunk key -> the core's node (None when absent, or not given to the core)."""


class Resolution(NamedTuple):
    """``session_votes``' answer: the session's best vote per key, and which keys exist."""

    votes: dict[Key, _Raw]
    existing: frozenset[Key]  # keys with a ready or running node (not startable)


def session_votes(
    session: SessionView,
    proposals: Collection[Proposal],
    node_of: NodeOf,
    node_by_key: NodeByKey,
    max_depth: int,
    pose_of: Callable[[str], str],
    timing: Timing,
) -> Resolution:
    """Resolve one session's proposals to chunk keys (``frontier.collect_votes``'s rules).

    Args:
        session: the session (its proposals must all carry its id; others are ignored).
        proposals: its proposals.
        node_of, node_by_key: lookups into the tree the core is given.
        max_depth: ``Budget.max_depth``.
        pose_of: action -> canonical pose, "" for an action ``poses.action_to_pose`` rejects.
        timing: supplies ``chunk_duration_s`` and the default ``think_s``.

    Returns:
        Per key, the session's best vote (largest p, then smallest depth, then action), need
        time unclamped; and the keys among them whose node is ready or running.
    """
    own = session.think_s
    step = timing.chunk_duration_s + (
        timing.think_s if own is None else (own if own > 0.0 else 0.0)
    )
    sid, memory_id, cursor = session.session_id, session.memory_id, session.cursor_chunk_id
    ws = session.watch_started_at
    votes: dict[Key, _Raw] = {}
    below: dict[str, TreeNode | None] = {}  # first pose -> the cursor's child (depth-2 parents)
    at_cursor: TreeNode | bool | None = False  # the cursor's node, looked up once
    for prop in proposals:
        path = prop.path
        depth = len(path)
        if prop.session_id != sid or not 1 <= depth <= max_depth:
            continue
        action = path[-1]
        last = pose_of(action)
        p = prop.probability
        if not math.isfinite(p) or not last:
            continue
        parent: TreeNode | None
        if depth == 1:
            if at_cursor is False:
                at_cursor = node_of(cursor)
            parent = at_cursor if isinstance(at_cursor, TreeNode) else None
        elif depth == 2:
            first = pose_of(path[0])
            if not first:
                continue
            if first in below:
                parent = below[first]
            else:
                parent = below[first] = node_by_key((memory_id, cursor, first))
        else:
            parent = _parent(node_of, node_by_key, memory_id, cursor, path, pose_of)
        if parent is None or parent.state != "ready":
            continue  # generation is serial: the chunk needs its parent's last frame
        key = (memory_id, parent.chunk_id, last)
        p = 0.0 if not p > 0.0 else (1.0 if p >= 1.0 else p)
        old = votes.get(key)
        if old is None or (-p, depth, action) < (-old[1], old[2], old[4]):
            votes[key] = (sid, p, depth, ws + depth * step, action, step)
    # A list, not a generator, into the frozenset; the NamedTuple built without its Python-level
    # ``__new__`` (one resolution per session moved: issue 10's hot path).
    existing = frozenset(
        [key for key in votes if (n := node_by_key(key)) is not None and n.state != "failed"]
    )
    return _new_resolution(Resolution, (votes, existing))


_new_resolution = tuple.__new__


def _parent(
    node_of: NodeOf, node_by_key: NodeByKey, memory_id: str, cursor: str,
    path: tuple[str, ...], pose_of: Callable[[str], str],
) -> TreeNode | None:  # fmt: skip
    """The node the path's last step branches from (``TreeIndex.last_step``), or None."""
    parent = node_of(cursor)
    parent_id: str | None = cursor
    for action in path[:-1]:
        pose = pose_of(action)
        if not pose:
            return None
        parent = node_by_key((memory_id, parent_id, pose)) if parent_id is not None else None
        parent_id = parent.chunk_id if parent is not None else None
    return parent


def pose_memo(frames: int) -> Callable[[str], str]:
    """Action -> canonical pose for ``frames`` frames, "" for a rejected action (memoised)."""
    memo: dict[str, str] = {}

    def pose_of(action: str) -> str:
        pose = memo.get(action)
        if pose is None:
            try:
                pose = str(action_to_pose(action, frames))
            except (PoseError, ValueError):
                pose = ""  # a policy bug must not stall planning
            memo[action] = pose
        return pose

    return pose_of
