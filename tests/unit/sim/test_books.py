"""The simulator's per-memory books against a real live state: what is loaded at an arrival, kept
between visits, spilled once the live state evicted the memory, and let go after the last."""

from __future__ import annotations

import itertools

from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import Budget, Timing
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.sim.books import MemoryBooks
from orchestrator.sim.records import JobRecord
from policies import make_policy

ROOT = str(action_to_pose("w"))
BUDGET = Budget(max_containers=2, idle_timeout_s=30.0)


def _live() -> LiveState:
    ids = itertools.count()
    return LiveState(
        budget=BUDGET, timing=Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=2.0),
        frames=125, proposer=SinglePolicy(make_policy("none")),
        new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}",
        new_job_id=lambda: f"j{next(ids)}", evict_after_s=float("inf"),
    )  # fmt: skip


def _root(memory: str) -> str:
    return f"{memory}:None/{ROOT}"


def _job(memory: str, chunk: str, started_at: float = 3.0) -> JobRecord:
    return JobRecord("j7", chunk, memory, "demand", "demand", "s0", 0, 1.0, started_at, 0.0,
                     8.0, False, 8.0, ended_at=started_at + 8.0)  # fmt: skip


def _open(books: MemoryBooks, live: LiveState, memory: str, session: str, now: float) -> None:
    """A viewer opens on the memory and asks for its root."""
    books.arrive(memory, live)
    live.open_session(session, memory, _root(memory), policy="none", arm="none", now=now)
    live.request(memory, None, ROOT, "w", request_id=f"{session}/r", session_id=session, now=now,
                 record_history=False)  # fmt: skip


def _leave(books: MemoryBooks, live: LiveState, memory: str, session: str) -> None:
    live.close_session(session)
    books.leave(memory)


def _root_made(books: MemoryBooks, live: LiveState, memory: str, now: float) -> None:
    """The root's demand job runs and completes, as the engine reports it."""
    (start,) = live.schedule(now).starts
    job = _job(memory, start.job.chunk_id, started_at=now)
    assert books.attempt(memory, job.chunk_id) == 1
    books.completed(job)
    live.job_ended(start.job.job_id, job.chunk_id, memory, ok=True, now=now + 8.0, gpu_s=8.0)
    books.keep(job, live)


def test_a_memory_visited_again_comes_back_from_disk_with_its_books() -> None:
    live, books = _live(), MemoryBooks({"m1": 2})
    _open(books, live, "m1", "s0", 0.0)
    _root_made(books, live, "m1", 0.0)
    _leave(books, live, "m1", "s0")
    assert books.started_at("m1", _root("m1")) == 0.0
    assert books.stored.chunks_in_ram == 1
    books.spill_evicted(live)
    assert books.stored.memories_on_disk == 0  # still loaded: nothing goes to disk yet
    live.schedule(100.0)  # quiet past the idle timeout: the session, then the memory, evicted
    assert not live.has_memory("m1")
    books.spill_evicted(live)
    assert books.stored.memories_on_disk == 1 and books.stored.chunks_in_ram == 0
    assert books.made == {} and books.started_at("m1", _root("m1")) is None
    books.arrive("m1", live)  # the second and last viewer
    node = live.node("m1", _root("m1"))
    assert node is not None and node.state == "ready"  # from disk, into the live state
    assert books.started_at("m1", _root("m1")) == 0.0  # the books came back with it
    assert books.stored.memories_in_ram == books.stored.memories_on_disk == 0  # last arrival
    books.leave("m1")
    assert books.open == {} and books.made == {} and books.attempts == {}


def test_a_memory_still_loaded_at_the_next_arrival_is_not_reloaded() -> None:
    live, books = _live(), MemoryBooks({"m1": 3})
    _open(books, live, "m1", "s0", 0.0)
    _root_made(books, live, "m1", 0.0)
    _leave(books, live, "m1", "s0")
    before = live.node("m1", _root("m1"))
    books.arrive("m1", live)  # within the idle timeout: the live state still holds it
    assert live.node("m1", _root("m1")) is before
    assert books.open == {"m1": 1} and books.stored.chunks_in_ram == 1


def test_no_chunk_is_kept_for_a_memory_nobody_will_visit_again() -> None:
    live, books = _live(), MemoryBooks({"m1": 1})
    _open(books, live, "m1", "s0", 0.0)
    _root_made(books, live, "m1", 0.0)
    _leave(books, live, "m1", "s0")
    assert books.stored.chunks_in_ram == 0  # its only viewer arrived: no next visit to serve
    assert books.open == {} and books.made == {} and books.attempts == {}


def test_attempts_count_per_chunk_until_it_is_ready() -> None:
    books = MemoryBooks({"m1": 2})
    assert [books.attempt("m1", "c1") for _ in range(3)] == [1, 2, 3]
    assert books.attempt("m1", "c2") == 1
    books.completed(_job("m1", "c1"))
    assert books.attempts == {"m1": {"c2": 1}}
    assert books.started_at("m1", "c1") is None  # nobody watched: no lead to measure
