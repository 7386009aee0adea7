"""The known part of each live memory's chunk tree: nodes by id, by chunk key, and by parent.

Pure and synchronous (no I/O, no clock). The live state keeps one ``KnownTree`` for every memory
it has loaded; the service loads it from the ``chunks`` table once per memory, the simulator
starts it empty. A node is ``TreeNode`` (``orchestrator.core.types``) plus a ``pending`` state
that the core never sees: a chunk row claimed for a waiting demand whose generation has not
started yet.

``neighbourhood(...)`` is what a plan reads instead of the whole tree: the cursor subtrees of the
sessions being planned for, to ``max_depth`` levels, and the ancestors of the chunks that running
jobs and queued demands generate (see ``LiveState.prepare``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.core.tree import Key
from orchestrator.core.types import TreeNode
from orchestrator.live.build import builder

LiveNodeState = Literal["ready", "running", "failed", "pending"]
"""NodeState plus ``pending``: a row claimed for a queued demand (not given to the core)."""


@dataclass(frozen=True, slots=True)
class KnownNode:
    """One chunk the live state knows.

    Attributes:
        chunk_id: chunk id (UUID text in the service, a hash id in the simulator).
        memory_id: its memory.
        parent_id: parent chunk id, None for the root.
        pose: canonical pose.
        action: the action whose canonical pose this is, or None (free-form pose).
        state: see ``LiveNodeState``.
        depth: chunk_index (0 for the root).
        ready_at: when it became ready (seconds on the caller's clock), None otherwise.
    """

    chunk_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    state: LiveNodeState
    depth: int
    ready_at: float | None = None
    core: TreeNode | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Built once: every plan hands the core these, so converting per plan was the hot path.
        # (Inline: a node is built at every put and state change.)
        state = self.state
        object.__setattr__(self, "core", None if state == "pending" else TreeNode(
            self.chunk_id, self.memory_id, self.parent_id, self.pose, self.action, state,
            self.depth, self.ready_at,
        ))  # fmt: skip

    @property
    def key(self) -> Key:
        """The chunk key (memory, parent, pose)."""
        return (self.memory_id, self.parent_id, self.pose)

    def as_core(self) -> TreeNode | None:
        """The core's view of the node; None for ``pending`` (the demand stands for it)."""
        return self.core


_tree_node = builder(TreeNode)
_known = builder(KnownNode, post_init_done_by_caller=True)
_set_core = KnownNode.__dict__["core"].__set__


def known_node(
    chunk_id: str, memory_id: str, parent_id: str | None, pose: str, action: str | None,
    state: LiveNodeState, depth: int, ready_at: float | None = None,
) -> KnownNode:  # fmt: skip
    """``KnownNode(...)``, built without ``__init__``'s per-field lookups (``live.build``):
    the same node, its core view included; the live state's own puts and state changes."""
    node = _known(chunk_id, memory_id, parent_id, pose, action, state, depth, ready_at)
    _set_core(node, None if state == "pending" else _tree_node(
        chunk_id, memory_id, parent_id, pose, action, state, depth, ready_at,
    ))  # fmt: skip
    return node


class KnownTree:
    """The known chunks of one memory. Keys and ids are unique within it.

    Args:
        memory_id: the memory.
        registry: chunk id -> tree, shared by the live state's trees (``LiveLookup``); every
            node put here is registered in it. None = not registered anywhere.
        changed: a set the memory id is added to at every change (``version`` bump): the live
            state's record of the trees that moved since its last plan. None = not recorded;
            either way ``take_moved`` gives the chunks changed since it was last called.
    """

    def __init__(
        self, memory_id: str, registry: dict[str, KnownTree] | None = None,
        changed: set[str] | None = None,
    ) -> None:  # fmt: skip
        self.memory_id = memory_id
        self._registry = registry
        self._changed = changed
        self._moved: set[str] = set()  # chunks put or moved since ``take_moved``
        self._by_id: dict[str, KnownNode] = {}
        self._by_key: dict[Key, str] = {}
        self._children: dict[str, dict[str, str]] = {}  # parent id -> pose -> child id
        self._roots: dict[str, str] = {}  # pose -> id of the nodes without a parent
        self.version = 0  # bumped by every change: cached neighbourhoods compare it

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[KnownNode]:
        return iter(self._by_id.values())

    def get(self, chunk_id: str | None) -> KnownNode | None:
        """The node with id ``chunk_id``, or None."""
        return self._by_id.get(chunk_id) if chunk_id is not None else None

    def by_key(self, key: Key) -> KnownNode | None:
        """The node generating chunk key ``key``, or None."""
        cid = self._by_key.get(key)
        return self._by_id[cid] if cid is not None else None

    def core_node(self, chunk_id: str) -> TreeNode | None:
        """The core's view of node ``chunk_id`` (None when unknown or pending)."""
        n = self._by_id.get(chunk_id)
        return n.core if n is not None else None

    def core_by_key(self, key: Key) -> TreeNode | None:
        """The core's view of the node of chunk key ``key`` (None when unknown or pending)."""
        cid = self._by_key.get(key)
        return self._by_id[cid].core if cid is not None else None

    def put(self, node: KnownNode) -> KnownNode:
        """Insert or replace ``node`` (same id, or a new id for a new key).

        Raises:
            ValueError: another node already holds ``node``'s key, or it belongs elsewhere.
        """
        if node.memory_id != self.memory_id:
            raise ValueError(f"node {node.chunk_id} is of memory {node.memory_id}")
        holder = self._by_key.get(node.key)
        if holder is not None and holder != node.chunk_id:
            raise ValueError(f"chunk key {node.key} is already chunk {holder}")
        self._by_id[node.chunk_id] = node
        self.version += 1
        self._moved.add(node.chunk_id)
        if self._changed is not None:
            self._changed.add(self.memory_id)
        self._by_key[node.key] = node.chunk_id
        if self._registry is not None:
            self._registry[node.chunk_id] = self
        if node.parent_id is not None:
            self._children.setdefault(node.parent_id, {})[node.pose] = node.chunk_id
        else:
            self._roots[node.pose] = node.chunk_id
        return node

    def set_state(self, chunk_id: str, state: LiveNodeState, now: float) -> KnownNode:
        """Move node ``chunk_id`` to ``state`` (``ready_at`` = now when it becomes ready)."""
        n = self._by_id[chunk_id]
        # Built directly (``dataclasses.replace`` costs twice as much: it is on every job's
        # start and end). Every field is passed; ``tests/unit/live/test_records.py`` fails if
        # KnownNode gains one, so that it cannot be reset to its default here unnoticed.
        updated = known_node(n.chunk_id, n.memory_id, n.parent_id, n.pose, n.action, state,
                             n.depth, now if state == "ready" else None)  # fmt: skip
        self._by_id[chunk_id] = updated
        self.version += 1
        self._moved.add(chunk_id)
        if self._changed is not None:
            self._changed.add(self.memory_id)
        return updated

    def take_moved(self) -> set[str]:
        """The chunks put or moved since the last call (and forget them)."""
        moved, self._moved = self._moved, set()
        return moved

    def children(self, chunk_id: str) -> Iterator[KnownNode]:
        """The known children of ``chunk_id``."""
        kids = self._children.get(chunk_id)
        if not kids:
            return iter(())
        by_id = self._by_id
        return iter([by_id[cid] for cid in kids.values()])

    def roots(self) -> Iterator[KnownNode]:
        """The known nodes without a parent (one per root pose)."""
        by_id = self._by_id
        return iter([by_id[cid] for cid in self._roots.values()])

    def subtree(self, chunk_id: str, depth: int) -> Iterator[KnownNode]:
        """``chunk_id`` and its known descendants at most ``depth`` levels below it, level by
        level. (Built as a list, not yielded: every caller takes it whole, once per visit of a
        session whose subtree moved.)"""
        by_id = self._by_id
        node = by_id.get(chunk_id)
        if node is None or depth < 0:
            return iter(())
        out, level, children = [node], [node], self._children
        for _ in range(depth):
            nxt = []
            for n in level:
                kids = children.get(n.chunk_id)
                if kids:
                    nxt.extend([by_id[cid] for cid in kids.values()])
            if not nxt:
                break
            out.extend(nxt)
            level = nxt
        return iter(out)

    def family(self, chunk_id: str | None) -> tuple[KnownNode, ...]:
        """``chunk_id`` and its known children (``subtree(chunk_id, 1)``); the roots when
        ``chunk_id`` is None: what a plan reads around a demand for a child of ``chunk_id``."""
        by_id = self._by_id
        if chunk_id is None:
            return tuple([by_id[cid] for cid in self._roots.values()])
        node = by_id.get(chunk_id)
        if node is None:
            return ()
        kids = self._children.get(chunk_id)
        if not kids:
            return (node,)
        return (node, *[by_id[cid] for cid in kids.values()])

    def is_family(self, nodes: tuple[KnownNode, ...], chunk_id: str | None) -> bool:
        """True when ``family(chunk_id)`` would give ``nodes`` again (the same objects): none
        was replaced and no child (root, for None) was added. Children are never removed, and
        a new one goes last, so the count tells."""
        if chunk_id is None:
            return len(nodes) == len(self._roots) and self.holds(nodes)
        if not nodes:
            return chunk_id not in self._by_id
        kids = self._children.get(chunk_id)
        return len(nodes) == 1 + (len(kids) if kids else 0) and self.holds(nodes)

    def holds(self, nodes: tuple[KnownNode, ...]) -> bool:
        """True when every one of ``nodes`` is still this tree's node (not replaced since)."""
        by_id = self._by_id
        for n in nodes:  # noqa: SIM110 (a loop: all() over a generator costs twice as much)
            if by_id.get(n.chunk_id) is not n:
                return False
        return True

    def is_ancestry(self, nodes: tuple[KnownNode, ...], depth: int) -> bool:
        """True when ``ancestry(nodes[0].chunk_id, depth)`` would give ``nodes`` again (the
        same objects): none was replaced, and a chain cut short at an unknown parent still
        is. Cheaper than building the tuple again and comparing."""
        if not nodes or not self.holds(nodes):
            return False
        if len(nodes) > depth:
            return len(nodes) == depth + 1
        parent = nodes[-1].parent_id
        return parent is None or parent not in self._by_id

    def ancestors(self, chunk_id: str | None, depth: int) -> Iterator[KnownNode]:
        """``chunk_id`` and up to ``depth`` known ancestors, nearest first."""
        return iter(self.ancestry(chunk_id, depth))

    def ancestry(self, chunk_id: str | None, depth: int) -> tuple[KnownNode, ...]:
        """``ancestors(chunk_id, depth)`` as a tuple (what the live state holds per job)."""
        by_id = self._by_id
        node = by_id.get(chunk_id) if chunk_id is not None else None
        if node is None or depth < 0:
            return ()
        out = [node]
        for _ in range(depth):
            parent = node.parent_id
            node = by_id.get(parent) if parent is not None else None
            if node is None:
                break
            out.append(node)
        return tuple(out)


class LiveLookup:
    """The core's ``tree.NodeLookup`` over the live state's known trees (``PlanInput.lookup``).

    Args:
        registry: chunk id -> the tree holding it (``KnownTree``'s ``registry``).
        trees: memory id -> its tree (the loaded memories).

    Reads only (O(1) dict reads each); pending nodes are None, as ``core_nodes`` leaves them out.
    """

    __slots__ = ("_registry", "_trees")

    def __init__(self, registry: Mapping[str, KnownTree], trees: Mapping[str, KnownTree]) -> None:
        self._registry, self._trees = registry, trees

    def node(self, chunk_id: str) -> TreeNode | None:
        """The core's view of chunk ``chunk_id`` (None when unknown or pending)."""
        tree = self._registry.get(chunk_id)
        return tree.core_node(chunk_id) if tree is not None else None

    def by_key(self, key: Key) -> TreeNode | None:
        """The core's view of the node of chunk key ``key`` (None when unknown or pending)."""
        tree = self._trees.get(key[0])
        return tree.core_by_key(key) if tree is not None else None


def core_nodes(nodes: Iterable[KnownNode]) -> tuple[TreeNode, ...]:
    """The core's view of ``nodes``, once each, pending ones left out."""
    seen: dict[str, TreeNode] = {}
    for n in nodes:
        core = n.core
        if core is not None:
            seen[n.chunk_id] = core
    return tuple(seen.values())
