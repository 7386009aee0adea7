"""The simulated chunk store: entries survive a spill to disk field for field, and a replay that
spills evicted memories is the replay that keeps them all in RAM."""

from __future__ import annotations

from dataclasses import astuple
from typing import Any

import pytest

from orchestrator.live import KnownNode, Producer
from orchestrator.sim.cold_store import ColdStore
from orchestrator.sim.engine import Simulation
from orchestrator.sim.metrics import summarize
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.synth import SynthKnobs, synthesize
from orchestrator.sim.trace import Trace


def _entry(i: int, used: bool = False) -> tuple[KnownNode, Producer | None]:
    node = KnownNode(f"c{i}", "m1", f"c{i - 1}" if i else None, "w-31", "w", "ready", i,
                     ready_at=10.0 + i / 3)  # fmt: skip
    made = None if i % 3 == 2 else Producer(f"j{i}", "speculative", 1, 0.1 + i / 7, used, 2.5)
    return node, made


def _fields(entries: list[tuple[KnownNode, Producer | None]]) -> list[tuple[Any, ...]]:
    return [(astuple(n)[:8], n.as_core(), None if p is None else astuple(p)) for n, p in entries]


def test_a_spilled_memory_comes_back_field_for_field_in_order() -> None:
    store = ColdStore()
    entries = [_entry(i) for i in range(7)]
    for node, made in entries:
        store.add("m1", node, made)
    store.add("m2", *_entry(0))
    expected = _fields(entries)
    assert store.take("m1")[0] is store.take("m1")[0]  # held in RAM until spilled
    store.spill("m1")
    assert (store.memories_in_ram, store.chunks_in_ram, store.memories_on_disk) == (1, 1, 1)
    assert store.spills == 1 and store.spilled_bytes > 0
    back, side = store.take("m1")
    assert side == (None, None)  # spilled with none
    assert _fields(back) == expected
    assert back[0][0] is not entries[0][0]  # read back: new objects, the old ones were let go
    assert store.memories_on_disk == 0 and store.memories_in_ram == 2
    store.close()


def test_a_producer_changed_while_loaded_is_spilled_as_changed() -> None:
    store = ColdStore()
    node, made = _entry(1)
    store.add("m1", node, made)
    store.spill("m1")
    first = store.take("m1")[0]
    producer = first[0][1]
    assert producer is not None and not producer.used
    producer.used, producer.charged_gpu_s = True, 0.0  # as the live state does on a hit
    store.add("m1", *_entry(2))  # a chunk made during the second visit goes after the first
    store.spill("m1")
    again = store.take("m1")[0]
    assert [n.chunk_id for n, _ in again] == ["c1", "c2"]
    assert again[0][1] == Producer("j1", "speculative", 1, 0.1 + 1 / 7, True, 0.0)
    store.close()


def test_the_engine_books_go_to_disk_and_back_with_the_chunks() -> None:
    store = ColdStore()
    store.spill("m1", ({"c1": 4.25}, {"c9": 2}))  # books alone (no chunk ready) are kept too
    assert store.memories_on_disk == 1
    assert store.take("m1") == ([], ({"c1": 4.25}, {"c9": 2}))
    assert store.take("m1") == ([], (None, None))  # handed over once
    store.close()


def test_drop_forgets_a_memory_in_ram_and_on_disk() -> None:
    store = ColdStore()
    store.add("m1", *_entry(0))
    store.add("m2", *_entry(0))
    store.spill("m1")
    store.drop("m1")
    store.drop("m2")
    assert store.take("m1") == store.take("m2") == ([], (None, None))
    store.spill("m3")  # nothing held: nothing written
    assert store.spills == 1
    store.close()


class _KeepAll(Simulation):
    """The replay before spilling: every stored chunk stays in RAM."""

    def _spill_evicted(self) -> None:
        return


class _Watched(Simulation):
    """The replay as shipped, noting the most memories whose chunks it held in RAM at once."""

    peak_in_ram = 0

    def _spill_evicted(self) -> None:
        super()._spill_evicted()
        self.peak_in_ram = max(self.peak_in_ram, self.books.stored.memories_in_ram)


def _revisiting_trace() -> Trace:
    """36 viewers on 12 memories, viewer i on memory i mod 12, one arrival every ~100 s: every
    memory is visited 3 times, ~1,200 s apart, after the live state evicted it (``short``
    evicts a memory ~120 s after its last request)."""
    knobs = SynthKnobs(sessions=36, sessions_per_memory=3.0, arrival_rate_per_s=0.01,
                       steps_min=4, steps_max=8, think_mean_s=1.5, seed=3)  # fmt: skip
    return Trace(tuple(synthesize(knobs)))


@pytest.mark.parametrize("policy", ["none", "markov", "lookahead", "oracle"])
def test_spilling_evicted_memories_changes_nothing_in_the_replay(policy: str) -> None:
    regime = load_regime("short")
    trace = _revisiting_trace()
    memories = {s.memory for s in trace.sessions}
    reference = _KeepAll(trace, regime, build_policy(policy, regime, trace)).run()
    sim = _Watched(trace, regime, build_policy(policy, regime, trace))
    result = sim.run()
    assert sim.books.stored.spills >= len(memories)  # every memory went to disk at least once
    assert sim.peak_in_ram < len(memories) / 2
    assert [astuple(r) for r in result.requests] == [astuple(r) for r in reference.requests]
    assert [astuple(j) for j in result.jobs] == [astuple(j) for j in reference.jobs]
    assert summarize(result, regime) == summarize(reference, regime)  # the leads included
    hits = sum(r.outcome == "hit" for r in result.requests if r.step >= 0)
    assert hits > 0  # later visitors are served from chunks that went through the disk
