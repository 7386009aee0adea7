"""A read-only index over a chunk-tree snapshot (``PlanInput.nodes``); pure, no I/O.

Chunk keys here are ``(memory_id, parent_id, pose)``: the generation profile is one per service,
so it is left out (DESIGN.md, "Words"). Node ids are unique across memories, so children are
indexed by parent id alone; the root (parent None) is found through its key.

If the snapshot holds two nodes with one chunk id or one chunk key (it should not: the database
keeps one row per key), the one in the most advanced state wins (ready > running > failed), then
the smallest chunk id, so the index never depends on the order of the input tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import TreeNode

Key = tuple[str, str | None, str]
"""A chunk key without the profile: (memory_id, parent_id or None for the root, canonical pose)."""

_RANK = {"ready": 0, "running": 1, "failed": 2}


class NodeLookup(Protocol):
    """Point lookups into a chunk tree the shell keeps (``PlanInput.lookup``): the live state's
    known trees (``orchestrator.live.tree.LiveLookup``) instead of a snapshot to index.

    Node ids are unique across memories and keys unique per memory (one row per key), so each
    lookup has at most one answer. Pending rows are not nodes (None).
    """

    def node(self, chunk_id: str) -> TreeNode | None:
        """The node with ``chunk_id``, or None."""
        ...

    def by_key(self, key: Key) -> TreeNode | None:
        """The node of chunk key ``key`` (memory, parent or None, canonical pose), or None."""
        ...


_K = TypeVar("_K")


class _Getter(Mapping[_K, TreeNode]):
    """A read-only mapping over a lookup function: ``get`` and ``[]`` only (not iterable)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[_K], TreeNode | None]) -> None:
        self._fn = fn

    def get(self, key: _K, default: object = None) -> TreeNode | None:  # type: ignore[override]
        """The node of ``key``, or None."""
        return self._fn(key)

    def __getitem__(self, key: _K) -> TreeNode:
        node = self._fn(key)
        if node is None:
            raise KeyError(key)
        return node

    def __iter__(self) -> Iterator[_K]:
        raise TypeError("a lookup-backed index cannot be iterated")

    def __len__(self) -> int:
        raise TypeError("a lookup-backed index has no length")


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

    The indexes are built on first use. ``plan()`` on a saturated pool needs a few hundred point
    lookups in a snapshot of 10^5 nodes: ``prefetch`` (ids) and ``by_keys`` (keys) answer them
    with one filtered scan each, several times cheaper than a dict over every node. Any lookup
    the prefetched ids do not cover builds the full id index, so every method always answers
    exactly as if both indexes had been built up front.

    With ``lookup`` (``PlanInput.lookup``: the shell's own per-memory dicts) no index is built
    and nothing is scanned: ``node``, ``prefetch``, ``by_keys``, ``id_index`` and ``key_index``
    answer through it, each read one call (``children`` and ``depth_below``, which need the
    whole snapshot, still index ``nodes``).
    """

    __slots__ = ("_by_id", "_by_key", "_children", "_kids", "_known", "_lookup", "_nodes",
                 "_poses")  # fmt: skip

    def __init__(self, nodes: Iterable[TreeNode], lookup: NodeLookup | None = None) -> None:
        self._lookup = lookup
        self._nodes: Sequence[TreeNode] = nodes if isinstance(nodes, tuple | list) else tuple(nodes)
        self._by_id: dict[str, TreeNode] | None = None
        self._known: dict[str, TreeNode | None] = {}  # prefetched ids (None: not in the snapshot)
        self._kids: dict[str | None, list[TreeNode]] = {}  # prefetched parent -> raw children
        self._by_key: dict[Key, TreeNode] | None = None
        self._children: dict[str, dict[str, TreeNode]] | None = None
        self._poses: dict[tuple[str, int], str] = {}

    def _ids(self) -> dict[str, TreeNode]:
        """The id index (built on first use): chunk id -> best node with that id."""
        if self._by_id is None:
            nodes = self._nodes
            by_id = {n.chunk_id: n for n in nodes}
            if len(by_id) != len(nodes):  # a duplicated id: the best node wins, not the last one
                by_id = {}
                for n in nodes:
                    if _better(n, by_id.get(n.chunk_id)):
                        by_id[n.chunk_id] = n
            self._by_id = by_id
        return self._by_id

    def _keys(self) -> dict[Key, TreeNode]:
        """The key index (built on first use): chunk key -> best node among id winners."""
        if self._by_key is None:
            nodes = self._ids().values()
            by_key = {(n.memory_id, n.parent_id, n.pose): n for n in nodes}
            if len(by_key) != len(nodes):  # a duplicated key: the best node wins
                by_key = {}
                for n in nodes:
                    if _better(n, by_key.get(node_key(n))):
                        by_key[node_key(n)] = n
            self._by_key = by_key
        return self._by_key

    def prefetch(
        self, chunk_ids: Iterable[str | None], children_of: Iterable[str | None] = ()
    ) -> Mapping[str, TreeNode | None]:
        """Make ``node()`` of ``chunk_ids`` and ``by_keys`` of keys under ``children_of`` (parent
        ids, None for roots) cheap without indexing every node: one filtered scan for both.

        Returns a mapping whose ``get`` gives ``node()`` of each of ``chunk_ids`` (it may hold
        other ids too). Ids and parents already fetched are not scanned again; once the indexes
        are built this only reads them. With a lookup it reads nothing.
        """
        if self._lookup is not None:
            return _Getter(self._lookup.node)
        known, kids = self._known, self._kids
        wanted: set[str] = set()
        if self._by_id is None:
            wanted = {c for c in chunk_ids if c is not None and c not in known}
        parents: set[str | None] = set()
        if self._by_key is None:
            parents = {c for c in children_of if c not in kids}
        if wanted or parents:
            if not parents:
                found = [n for n in self._nodes if n.chunk_id in wanted]
            elif not wanted:
                found = [n for n in self._nodes if n.parent_id in parents]
            else:
                found = [n for n in self._nodes if n.chunk_id in wanted or n.parent_id in parents]
            for c in parents:
                kids[c] = []
            for n in found:
                if n.chunk_id in wanted and _better(n, known.get(n.chunk_id)):
                    known[n.chunk_id] = n
                if n.parent_id in parents:
                    kids[n.parent_id].append(n)
            for c in wanted:
                known.setdefault(c, None)
        return known if self._by_id is None else self._by_id

    def reader(self, chunk_ids: Iterable[str | None]) -> Callable[[str], TreeNode | None]:
        """A function giving ``node()`` of each of ``chunk_ids`` (``prefetch``'s ``get``); with a
        lookup, its own ``node`` (one call per read, no wrapper built)."""
        if self._lookup is not None:
            return self._lookup.node
        return self.prefetch(chunk_ids).get

    def id_index(self) -> Mapping[str, TreeNode]:
        """Chunk id -> node, read-only (for hot loops that bind ``.get`` once)."""
        if self._lookup is not None:
            return _Getter(self._lookup.node)
        return self._ids()

    def key_index(self) -> Mapping[Key, TreeNode]:
        """Chunk key -> node, read-only (built on first use; see ``by_key``)."""
        if self._lookup is not None:
            return _Getter(self._lookup.by_key)
        return self._keys()

    def node(self, chunk_id: str | None) -> TreeNode | None:
        """The node with ``chunk_id``, or None (also for None)."""
        if chunk_id is None:
            return None
        if self._lookup is not None:
            return self._lookup.node(chunk_id)
        if self._by_id is None and chunk_id in self._known:
            return self._known[chunk_id]
        return self._ids().get(chunk_id)

    def is_ready(self, chunk_id: str | None) -> bool:
        """True when ``chunk_id`` is a node in state "ready" (False for None)."""
        n = self.node(chunk_id)
        return n is not None and n.state == "ready"

    def children(self, parent_id: str) -> Mapping[str, TreeNode]:
        """Existing children of ``parent_id``, canonical pose -> node (read-only view)."""
        if self._children is None:
            children: dict[str, dict[str, TreeNode]] = {}
            for (_, parent, pose), n in self._keys().items():
                if parent is not None:
                    children.setdefault(parent, {})[pose] = n
            self._children = children
        return self._children.get(parent_id, {})

    def by_key(self, memory_id: str, parent_id: str | None, pose: str) -> TreeNode | None:
        """The node of chunk key (memory_id, parent_id, canonical pose), or None."""
        if self._lookup is not None:
            return self._lookup.by_key((memory_id, parent_id, pose))
        return self._keys().get((memory_id, parent_id, pose))

    def by_keys(self, keys: Iterable[Key]) -> Mapping[Key, TreeNode]:
        """``by_key`` for several keys at once: a mapping that gives the node of each of ``keys``
        that has one (and may hold other keys too: read only the keys asked for).

        Returns the key index itself when it is built; otherwise scans the nodes for children of
        the keys' parents (and, only when some are found, for their ids: a node stands for its
        key only if it is the best node with its id). With a lookup: a mapping over it.
        """
        if self._lookup is not None:
            return _Getter(self._lookup.by_key)
        if self._by_key is not None:
            return self._by_key
        wanted = set(keys)
        if not wanted:
            return {}
        parents = {k[1] for k in wanted}
        if parents.issubset(self._kids):
            matches = [n for p in parents for n in self._kids[p] if node_key(n) in wanted]
        else:
            nodes = self._nodes if self._by_id is None else self._by_id.values()
            matches = [n for n in nodes if n.parent_id in parents]
            matches = [n for n in matches if node_key(n) in wanted]
        self.prefetch(n.chunk_id for n in matches)
        out: dict[Key, TreeNode] = {}
        for n in matches:
            key = node_key(n)
            winner = self.node(n.chunk_id)
            if (winner is n or winner == n) and _better(n, out.get(key)):
                out[key] = n
        return out

    def depth_below(
        self, chunk_id: str, ancestor_id: str, max_steps: int | None = None
    ) -> int | None:
        """Levels from ``ancestor_id`` down to ``chunk_id`` (0 when equal), or None.

        Walks parent links up from ``chunk_id``; None when ``ancestor_id`` is not on the way to
        the root, or is more than ``max_steps`` levels up. A node missing from the snapshot ends
        the walk (its ancestry is unknown). Cycles cannot loop forever: the walk is bounded by
        the number of nodes.
        """
        by_id = self._ids()
        limit = len(by_id) if max_steps is None else max_steps
        current: str | None = chunk_id
        for steps in range(limit + 1):
            if current is None:
                return None
            if current == ancestor_id:
                return steps
            n = by_id.get(current)
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
        parent = self.node(cursor_id)
        parent_id: str | None = cursor_id
        pose = ""
        last = len(path) - 1
        for i, action in enumerate(path):
            pose = self.pose_of(action, frames)
            if i == last:
                break
            node = self.by_key(memory_id, parent_id, pose) if parent_id is not None else None
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
