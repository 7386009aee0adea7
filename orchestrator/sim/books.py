"""What the simulator keeps per memory across its visits: the part the service's database plays.

The service keeps a memory's chunks, the jobs that made them and the attempts at them in
PostgreSQL, whether or not anyone watches it, and loads the chunks into the live state when a
session opens on it. The engine (``orchestrator.sim.engine``) keeps, per memory, what a replay
reads again, here:

- ``arrivals_left`` and ``open``: sessions still to arrive, sessions open now;
- the ready chunks for the next visit (``stored``, a ``ColdStore``: on disk once the live state
  has evicted the memory);
- ``made``: chunk id -> when the job that completed it started (the metrics' ``lead``);
- ``attempts``: chunk id -> generations started until it is ready (the pool draws each
  attempt's time apart, ``GpuPool.acquire``).

A memory's books go when nobody will arrive on it again and its last session has ended, so they
are bounded by the memories in use; those of a memory the live state evicted go to disk with
its chunks (nothing reads them while it is not loaded: the live state evicts only a memory with
no session, job or demand).
"""

from __future__ import annotations

from orchestrator.live import LiveState, Producer
from orchestrator.sim.cold_store import ColdStore
from orchestrator.sim.records import JobRecord


class MemoryBooks:
    """Per-memory books of one replay (module doc). ``arrivals``: memory -> sessions that will
    arrive on it over the whole trace (``SessionSource.arrivals_per_memory``)."""

    def __init__(self, arrivals: dict[str, int]) -> None:
        self.arrivals_left = arrivals
        self.open: dict[str, int] = {}  # memory -> sessions open on it (0 kept until the last)
        self.made: dict[str, dict[str, float]] = {}
        self.attempts: dict[str, dict[str, int]] = {}
        self.stored = ColdStore()
        self._quiet: set[str] = set()  # memories nobody watches now, to spill once evicted
        self._evicted = 0  # ``LiveState.memories_evicted`` when ``_quiet`` was last looked at

    def arrive(self, memory_id: str, live: LiveState) -> None:
        """A session arrives on the memory: its stored chunks (and books, if spilled) are loaded
        into ``live`` unless it holds the memory already; after the last arrival they are let
        go (nobody else will load them)."""
        left = self.arrivals_left[memory_id] = self.arrivals_left[memory_id] - 1
        if not live.has_memory(memory_id):
            entries, (made, tried) = self.stored.take(memory_id)  # books spilled with them
            live.load_memory(memory_id, entries)
            if made is not None:
                self.made[memory_id] = made
            if tried is not None:
                self.attempts[memory_id] = tried
        if left == 0:
            self.stored.drop(memory_id)
            self._quiet.discard(memory_id)
        self.open[memory_id] = self.open.get(memory_id, 0) + 1

    def leave(self, memory_id: str) -> None:
        """A session on the memory ended: the books go with the last one if nobody else will
        arrive; else the memory is spilled once the live state evicts it (``spill_evicted``)."""
        self.open[memory_id] -= 1
        if self.open[memory_id] == 0:
            if self.arrivals_left[memory_id] == 0:
                del self.open[memory_id]  # nobody will ask for its chunks again
                self.made.pop(memory_id, None)
                self.attempts.pop(memory_id, None)
            else:
                self._quiet.add(memory_id)

    def attempt(self, memory_id: str, chunk_id: str) -> int:
        """A generation of the chunk starts: its attempt number (1 for the first)."""
        tried = self.attempts.setdefault(memory_id, {})
        attempt = tried[chunk_id] = tried.get(chunk_id, 0) + 1
        return attempt

    def completed(self, job: JobRecord) -> None:
        """The job's chunk is ready (before the live state hears of it): never generated again,
        and made by a job started at ``job.started_at`` while the memory is in use."""
        tried = self.attempts.get(job.memory_id)
        if tried is not None:
            tried.pop(job.chunk_id, None)
        if job.memory_id in self.open:
            self.made.setdefault(job.memory_id, {}).setdefault(job.chunk_id, job.started_at)

    def keep(self, job: JobRecord, live: LiveState) -> None:
        """After ``live`` took the job's end: store its chunk for the memory's next visit, if
        there will be one (as the service's database row and its job's)."""
        if self.arrivals_left.get(job.memory_id, 0) > 0:
            node = live.node(job.memory_id, job.chunk_id)
            if node is not None:
                made = Producer(job.job_id, job.initial_kind, job.depth, job.probability,
                                job.used)  # fmt: skip
                self.stored.add(job.memory_id, node, made)

    def started_at(self, memory_id: str, chunk_id: str) -> float | None:
        """When the job that completed the chunk started (None: no job of this replay did)."""
        made = self.made.get(memory_id)
        return made.get(chunk_id) if made is not None else None

    def spill_evicted(self, live: LiveState) -> None:
        """Write to disk the chunks and books of quiet memories ``live`` has evicted; looks only
        when it evicted one since the last call."""
        if not self._quiet or live.memories_evicted == self._evicted:
            return
        self._evicted = live.memories_evicted
        for memory in [m for m in self._quiet if not live.has_memory(m)]:
            self._quiet.discard(memory)
            side = (self.made.pop(memory, None), self.attempts.pop(memory, None))
            self.stored.spill(memory, side)

    def close(self) -> None:
        """The replay ended: remove the spill file."""
        self.stored.close()
