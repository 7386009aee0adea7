"""An API replica's view of its memories' chunk trees: what it needs to answer hits alone.

A replica (``[cluster] role = "api"``, issue 16) runs no live state and no jobs. It loads a
memory's chunks the first time a request names it (the same query the live state is loaded
with), then keeps the view fresh from the ``rewind_chunks`` notifications that migration 007's
trigger sends in the writer's own transaction, plus a periodic catch-up query
(``chunks_ready_since``) for whatever a dropped listening connection missed. A hit is a dict
lookup here: no database round trip.

Plain values only (no asyncio, no database): ``orchestrator.replica`` feeds it rows and payloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.types import NodeState

_STATES: dict[str, NodeState] = {
    "ready": "ready", "pending": "running", "failed": "failed", "cancelled": "failed",
}  # fmt: skip


@dataclass(slots=True)
class ViewNode:
    """One chunk as a replica knows it; ``state`` ready / running (pending row) / failed.

    ``job_id`` / ``speculative`` / ``depth`` / ``probability`` describe the attempt that made
    (or makes) it; ``used`` whether a request already used that speculation.
    """

    chunk_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    state: NodeState
    depth: int
    job_id: str | None = None
    speculative: bool = False
    spec_depth: int | None = None
    probability: float | None = None
    used: bool = False


@dataclass(slots=True)
class _Memory:
    nodes: dict[str, ViewNode] = field(default_factory=dict)
    by_key: dict[tuple[str | None, str], str] = field(default_factory=dict)
    touched_at: float = 0.0


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class ReadyView:
    """Memory id -> its known chunks, by id and by (parent, pose). Bounded by ``max_memories``
    (least recently touched evicted first)."""

    def __init__(self, max_memories: int = 20_000) -> None:
        self.max_memories = max_memories
        self._memories: dict[str, _Memory] = {}

    def __len__(self) -> int:
        return len(self._memories)

    def has(self, memory_id: str) -> bool:
        """True when the memory's tree is loaded."""
        return memory_id in self._memories

    def memory_ids(self) -> list[str]:
        """The loaded memories (the catch-up query's argument)."""
        return list(self._memories)

    def load(self, memory_id: str, rows: Iterable[Mapping[str, Any]], now: float) -> None:
        """Load a memory's rows (``chunks_of_memory_live``: parents first); kept if loaded."""
        if memory_id in self._memories:
            return
        self._memories[memory_id] = _Memory(touched_at=now)
        for r in rows:
            self.apply({**r, "memory_id": memory_id})
        while len(self._memories) > self.max_memories:
            oldest = min(self._memories, key=lambda m: self._memories[m].touched_at)
            del self._memories[oldest]

    def apply(self, row: Mapping[str, Any]) -> ViewNode | None:
        """A chunk row or ``rewind_chunks`` payload (``id``, ``memory_id``, ``status``, ...);
        ignored (None) for a memory that is not loaded."""
        mem = self._memories.get(str(row["memory_id"]))
        if mem is None:
            return None
        cid = str(row["id"])
        spec = row.get("initial_kind") == "speculative"
        node = ViewNode(
            cid, str(row["memory_id"]), _text(row.get("parent_chunk_id")), str(row["pose"]),
            row.get("action"), _STATES.get(str(row["status"]), "failed"),
            int(row["chunk_index"]), _text(row.get("job_id")), spec,
            row.get("depth") if spec else None, row.get("probability") if spec else None,
            bool(row.get("used")),
        )  # fmt: skip
        old = mem.nodes.get(cid)
        if old is not None and old.used and old.job_id == node.job_id:
            node.used = True  # this replica already stamped it (its write may not be visible)
        mem.nodes[cid] = node
        mem.by_key[(node.parent_id, node.pose)] = cid
        return node

    def node(self, memory_id: str, chunk_id: str | None) -> ViewNode | None:
        """A known chunk of a loaded memory, or None."""
        mem = self._memories.get(memory_id)
        return mem.nodes.get(chunk_id) if mem is not None and chunk_id is not None else None

    def by_key(
        self, memory_id: str, parent_id: str | None, pose: str, now: float
    ) -> ViewNode | None:
        """The chunk of key (memory, parent, pose), or None; marks the memory recently used."""
        mem = self._memories.get(memory_id)
        if mem is None:
            return None
        mem.touched_at = now
        cid = mem.by_key.get((parent_id, pose))
        return mem.nodes.get(cid) if cid is not None else None

    def states(self, memory_id: str) -> dict[str, NodeState]:
        """chunk id -> state of a loaded memory's known chunks."""
        mem = self._memories.get(memory_id)
        return {c: n.state for c, n in mem.nodes.items()} if mem is not None else {}

    def evict_idle(self, now: float, idle_s: float) -> int:
        """Forget memories untouched for ``idle_s`` seconds; returns how many."""
        cold = [m for m, mem in self._memories.items() if now - mem.touched_at > idle_s]
        for m in cold:
            del self._memories[m]
        return len(cold)
