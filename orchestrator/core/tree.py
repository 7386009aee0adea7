"""A read-only index over a chunk-tree snapshot (``PlanInput.nodes``); pure, no I/O.

Chunk keys here are ``(memory_id, parent_id, pose)``: the generation profile is one per service,
so it is left out (DESIGN.md, "Words"). Node ids are unique across memories, so children are
indexed by parent id alone; the root (parent None) is found through its key.

If the snapshot holds two nodes with one chunk id or one chunk key (it should not: the database
keeps one row per key), the one in the most advanced state wins (ready > running > failed), then
the smallest chunk id, so the index never depends on the order of the input tuple.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import TreeNode

Key = tuple[str, str | None, str]
"""A chunk key without the profile: (memory_id, parent_id or None for the root, canonical pose)."""

_RANK = {"ready": 0, "running": 1, "failed": 2}


def node_key(node: TreeNode) -> Key:
    """The chunk key of ``node``."""
    return (node.memory_id, node.parent_id, node.pose)


def _better(a: TreeNode, b: TreeNode | None) -> bool:
    return b is None or (_RANK[a.state], a.chunk_id) < (_RANK[b.state], b.chunk_id)


@dataclass(frozen=True, slots=True)
class PathStep:
    """One step of a resolved action path.

    Attributes:
        action: the action as proposed.
        pose: its canonical pose for the chunk's frame count.
        parent: the node this step branches from, None when the previous step has no node.
        node: the existing chunk for (memory, parent, pose), None when absent.
    """

    action: str
    pose: str
    parent: TreeNode | None
    node: TreeNode | None


class TreeIndex:
    """Lookups over a snapshot of chunk-tree nodes (any order, any number of memories).

    All lookups are O(1) dict reads except the ancestor walks, which are O(steps walked).
    """

    __slots__ = ("_by_id", "_by_key", "_children", "_poses")

    def __init__(self, nodes: Iterable[TreeNode]) -> None:
        by_id: dict[str, TreeNode] = {}
        by_key: dict[Key, TreeNode] = {}
        for n in nodes:
            if _better(n, by_id.get(n.chunk_id)):
                by_id[n.chunk_id] = n
        for n in by_id.values():
            if _better(n, by_key.get(node_key(n))):
                by_key[node_key(n)] = n
        children: dict[str, dict[str, TreeNode]] = {}
        for (_, parent_id, pose), n in by_key.items():
            if parent_id is not None:
                children.setdefault(parent_id, {})[pose] = n
        self._by_id = by_id
        self._by_key = by_key
        self._children = children
        self._poses: dict[tuple[str, int], str] = {}

    def node(self, chunk_id: str | None) -> TreeNode | None:
        """The node with ``chunk_id``, or None (also for None)."""
        return None if chunk_id is None else self._by_id.get(chunk_id)

    def is_ready(self, chunk_id: str | None) -> bool:
        """True when ``chunk_id`` is a node in state "ready" (False for None)."""
        n = self.node(chunk_id)
        return n is not None and n.state == "ready"

    def children(self, parent_id: str) -> Mapping[str, TreeNode]:
        """Existing children of ``parent_id``, canonical pose -> node (read-only view)."""
        return self._children.get(parent_id, {})

    def by_key(self, memory_id: str, parent_id: str | None, pose: str) -> TreeNode | None:
        """The node of chunk key (memory_id, parent_id, canonical pose), or None."""
        return self._by_key.get((memory_id, parent_id, pose))

    def depth_below(
        self, chunk_id: str, ancestor_id: str, max_steps: int | None = None
    ) -> int | None:
        """Levels from ``ancestor_id`` down to ``chunk_id`` (0 when equal), or None.

        Walks parent links up from ``chunk_id``; None when ``ancestor_id`` is not on the way to
        the root, or is more than ``max_steps`` levels up. A node missing from the snapshot ends
        the walk (its ancestry is unknown). Cycles cannot loop forever: the walk is bounded by
        the number of nodes.
        """
        limit = len(self._by_id) if max_steps is None else max_steps
        current: str | None = chunk_id
        for steps in range(limit + 1):
            if current is None:
                return None
            if current == ancestor_id:
                return steps
            n = self._by_id.get(current)
            current = n.parent_id if n is not None else None
        return None

    def is_descendant(self, chunk_id: str, ancestor_id: str) -> bool:
        """True when ``chunk_id`` lies strictly below ``ancestor_id``."""
        depth = self.depth_below(chunk_id, ancestor_id)
        return depth is not None and depth > 0

    def pose_of(self, action: str, frames: int) -> str:
        """Canonical pose string of ``action`` for ``frames`` frames (cached per index).

        Raises:
            PoseError, ValueError: as ``poses.action_to_pose``.
        """
        key = (action, frames)
        pose = self._poses.get(key)
        if pose is None:
            pose = self._poses[key] = str(action_to_pose(action, frames))
        return pose

    def last_step(
        self, memory_id: str, cursor_id: str, path: tuple[str, ...], frames: int
    ) -> tuple[TreeNode | None, str]:
        """``resolve_path``'s last step as (parent node or None, canonical pose), allocation-free.

        The planner's hot path (one call per proposal). ``path`` must not be empty.

        Raises:
            PoseError, ValueError: as ``resolve_path``.
        """
        parent = self._by_id.get(cursor_id)
        parent_id: str | None = cursor_id
        pose = ""
        last = len(path) - 1
        for i, action in enumerate(path):
            pose = self.pose_of(action, frames)
            if i == last:
                break
            node = self._by_key.get((memory_id, parent_id, pose)) if parent_id is not None else None
            parent = node
            parent_id = node.chunk_id if node is not None else None
        return parent, pose

    def resolve_path(
        self, memory_id: str, cursor_id: str, path: Iterable[str], frames: int
    ) -> tuple[PathStep, ...]:
        """Walk ``path`` (actions) down from ``cursor_id``, one ``PathStep`` per action.

        Step i's parent is step i-1's node (the cursor for the first step); once a step has no
        node, every later step has parent None and node None.

        Raises:
            PoseError, ValueError: an action that ``poses.action_to_pose`` rejects.
        """
        steps: list[PathStep] = []
        parent = self.node(cursor_id)
        parent_id: str | None = cursor_id
        for action in path:
            pose = self.pose_of(action, frames)
            node = self.by_key(memory_id, parent_id, pose) if parent_id is not None else None
            steps.append(PathStep(action, pose, parent, node))
            parent = node
            parent_id = node.chunk_id if node is not None else None
        return tuple(steps)
