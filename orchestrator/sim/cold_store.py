"""The simulated service's chunk store: what the service's database holds between two visits.

The service keeps every ready chunk in PostgreSQL and loads a memory's known chunks when a
session opens on it (``LiveState.load_memory``). The simulator replays that with this store: each
ready chunk of a memory a later session will arrive on is added as it completes; the memory's
entries are handed to the live state at the next arrival (``take``), with the engine's side
books of that memory (``Side``) that were spilled with them. In RAM that store grows with
the trace wherever memories are visited again across all of it (a trace that puts viewer i on
memory i mod M), which is what a database is for: once the live state has evicted a memory, its
entries are written to a spill file on disk (``spill``) and read back at the next arrival, so the
replay's memory is bounded by the memories in use, not by the chunks made so far.

Exactness: an entry is ``(KnownNode, Producer | None)``; the live state keeps the loaded
objects and mutates a ``Producer`` (``used``, ``charged_gpu_s``) while the memory is loaded, so a
memory is spilled only after the live state has let go of it (the engine checks
``LiveState.has_memory``). Each object is written as the tuple of its constructor's fields (read
off the dataclasses, so a new field travels too) and rebuilt by its constructor: pickle of plain
tuples is C-fast where an object's own ``__getstate__`` is Python, and restores every field bit
for bit: the replay is the same with and without spilling (``tests/unit/sim/test_cold_store.py``).

The spill file is an anonymous temporary file (``tempfile.TemporaryFile``: removed by the OS when
closed, or when the process ends), appended to; a memory spilled again is written anew (its
earlier record becomes dead space: the file grows with the spills, ~0.2 KB a chunk).
"""

from __future__ import annotations

import operator
import pickle
import tempfile
from dataclasses import fields
from typing import IO, Any

from orchestrator.live import KnownNode, Producer

Entry = tuple[KnownNode, Producer | None]
"""A ready chunk of the memory's tree and the job that made it (``LiveState.load_memory``)."""
Side = tuple[dict[str, float] | None, dict[str, int] | None]
"""The engine's own per-memory books that outlive a visit, spilled with the memory's chunks:
chunk id -> when the job that completed it started (the metrics' lead), and chunk id ->
generations started until it is ready (the pool's per-attempt draws)."""


_node_fields = operator.attrgetter(*(f.name for f in fields(KnownNode) if f.init))
_producer_fields = operator.attrgetter(*(f.name for f in fields(Producer) if f.init))


def _encode(entries: list[Entry]) -> list[tuple[Any, ...]]:
    return [(_node_fields(n), None if p is None else _producer_fields(p)) for n, p in entries]


def _decode(rows: list[tuple[Any, ...]]) -> list[Entry]:
    return [(KnownNode(*n), None if p is None else Producer(*p)) for n, p in rows]


class ColdStore:
    """Ready chunks by memory, in RAM while the memory may be loaded, on disk once it is not.

    Entries keep their insertion order (parents first, as ``load_memory`` needs them): a memory's
    chunks complete after their parents.
    """

    def __init__(self) -> None:
        self._hot: dict[str, list[Entry]] = {}
        self._spilled: dict[str, tuple[int, int]] = {}  # memory -> (offset, length) in _file
        self._file: IO[bytes] | None = None
        self._end = 0
        self.spills = 0  # memories written to disk so far (a memory may be written again)
        self.spilled_bytes = 0  # bytes written to the spill file so far

    def add(self, memory_id: str, node: KnownNode, producer: Producer | None) -> None:
        """A ready chunk of ``memory_id`` (loaded in the live state, so never spilled now)."""
        hot = self._hot.get(memory_id)
        if hot is None:
            hot = self._hot[memory_id] = self._read(memory_id)[0]
        hot.append((node, producer))

    def take(self, memory_id: str) -> tuple[list[Entry], Side]:
        """The memory's entries, read back from disk if spilled (they stay held in RAM from here:
        the live state will hold these very objects, until ``spill`` or ``drop``), and the side
        books spilled with them ((None, None) unless this call read them back)."""
        hot = self._hot.get(memory_id)
        if hot is not None:
            return hot, (None, None)
        hot, side = self._read(memory_id)
        self._hot[memory_id] = hot
        return hot, side

    def spill(self, memory_id: str, side: Side = (None, None)) -> None:
        """Write the memory's entries and ``side`` to disk and let go of them. Only for a memory
        the live state no longer holds (module doc); nothing to do when both are empty."""
        hot = self._hot.pop(memory_id, None) or []
        if not hot and not any(side):
            return
        blob = pickle.dumps((_encode(hot), side), protocol=pickle.HIGHEST_PROTOCOL)
        if self._file is None:
            # Held open across calls and closed by ``close`` (a context manager cannot span them).
            self._file = tempfile.TemporaryFile(prefix="rewind-sim-store-")  # noqa: SIM115
        self._file.seek(self._end)
        self._file.write(blob)
        self._spilled[memory_id] = (self._end, len(blob))
        self._end += len(blob)
        self.spills += 1
        self.spilled_bytes += len(blob)

    def drop(self, memory_id: str) -> None:
        """Forget the memory (nobody will load it again); its bytes on disk become dead space."""
        self._hot.pop(memory_id, None)
        self._spilled.pop(memory_id, None)

    def close(self) -> None:
        """Remove the spill file (entries in RAM stay usable; spilled ones are gone)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._spilled.clear()

    @property
    def memories_in_ram(self) -> int:
        """Memories whose entries are held in RAM."""
        return len(self._hot)

    @property
    def chunks_in_ram(self) -> int:
        """Entries held in RAM, all memories together."""
        return sum(len(v) for v in self._hot.values())

    @property
    def memories_on_disk(self) -> int:
        """Memories whose entries are only on disk."""
        return len(self._spilled)

    def _read(self, memory_id: str) -> tuple[list[Entry], Side]:
        where = self._spilled.pop(memory_id, None)
        if where is None or self._file is None:
            return [], (None, None)
        offset, length = where
        self._file.seek(offset)
        rows, side = pickle.loads(self._file.read(length))
        return _decode(rows), side
