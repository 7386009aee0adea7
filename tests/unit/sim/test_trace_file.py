"""Streamed traces (``orchestrator.sim.trace_file``): the same sessions, errors and replays as
the parsed trace, in arrival order, without the replay holding sessions that ended."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.sim.engine import SimResult, Simulation
from orchestrator.sim.metrics import summarize
from orchestrator.sim.regime import Regime, load_regime
from orchestrator.sim.run import build_policy, run_one
from orchestrator.sim.synth import SynthKnobs, synthesize
from orchestrator.sim.trace import (
    SessionTrace,
    Step,
    Trace,
    TraceError,
    dumps_session,
    read_trace,
    write_trace,
)
from orchestrator.sim.trace_file import TraceFile, open_trace

POLICIES = ["none", "uniform", "markov", "lookahead", "oracle"]


def sessions(n: int = 14, seed: int = 3) -> list[SessionTrace]:
    knobs = SynthKnobs(sessions=n, sessions_per_memory=3.0, arrival_rate_per_s=0.2,
                       steps_min=3, steps_max=8, seed=seed)  # fmt: skip
    return list(synthesize(knobs))


def small_regime() -> Regime:
    r = load_regime("short")
    budget = replace(r.budget, max_containers=4, rate_gpu_s_per_s=1.0, burst_gpu_s=40.0)
    return replace(r, budget=budget, pool=replace(r.pool, max_containers=4, warm_containers=2))


def replay(trace: Trace | TraceFile, reg: Regime, policy: str, whole: Trace) -> SimResult:
    """A replay with records; streamed, the oracle is told each future as the session arrives
    (parsed, it is given them all up front)."""
    built = build_policy(policy, reg, whole if isinstance(trace, Trace) else None)
    return Simulation(trace, reg, built, seed=2).run()


@pytest.mark.parametrize("policy", POLICIES)
def test_a_streamed_replay_is_the_parsed_replay(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, sessions(), {"made_by": "test"})
    whole, streamed = read_trace(path), open_trace(path)
    assert streamed.in_order and streamed.offsets.tolist() == []  # nothing kept per line
    reg = small_regime()
    a = replay(whole, reg, policy, whole)
    b = replay(streamed, reg, policy, whole)
    assert a.requests and a.requests == b.requests and a.jobs == b.jobs
    assert summarize(a, reg) == summarize(b, reg)
    assert (a.plans, a.end_s, a.peak_sessions) == (b.plans, b.end_s, b.peak_sessions)


def test_the_index_counts_what_the_parsed_trace_holds(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, sessions(), {"made_by": "test"})
    whole, streamed = read_trace(path), open_trace(path)
    assert streamed.meta == whole.meta == {"made_by": "test"}
    assert streamed.session_count == whole.session_count == 14
    assert streamed.step_count == whole.step_count
    assert streamed.memories == whole.memories
    assert streamed.arrivals_per_memory() == whole.arrivals_per_memory()
    assert streamed.first_start_s == whole.first_start_s
    assert list(streamed.in_arrival_order()) == list(whole.in_arrival_order())
    assert list(streamed.in_arrival_order()) == list(whole.sessions)  # again: a fresh pass


def test_an_unsorted_file_is_read_by_seek_in_arrival_order(tmp_path: Path) -> None:
    ordered = sessions(20, seed=5)
    ties = [SessionTrace(f"tie{i}", "mt", ordered[7].start_s, (Step("w", 1.0),)) for i in range(3)]
    shuffled = ordered + ties
    random.Random(1).shuffle(shuffled)
    path = tmp_path / "shuffled.jsonl"
    with path.open("w") as fh:  # blank lines and CRLF endings count as lines too
        fh.write('{"meta": {"shuffled": true}}\r\n\n')
        for s in shuffled:
            fh.write(dumps_session(s) + "\r\n\n")
    whole, streamed = read_trace(path), open_trace(path)
    assert not streamed.in_order and len(streamed.offsets) == len(shuffled)
    got = list(streamed.in_arrival_order())
    assert got == list(whole.in_arrival_order())
    assert [s.start_s for s in got] == sorted(s.start_s for s in whole.sessions)
    assert [s.session_id for s in got if s.memory == "mt"] == [
        s.session_id for s in shuffled if s.memory == "mt"
    ]  # ties keep file order
    reg = small_regime()
    for policy in ("none", "oracle"):
        a = replay(whole, reg, policy, whole)
        b = replay(streamed, reg, policy, whole)
        assert a.requests == b.requests and a.jobs == b.jobs


BAD = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"session_id": "x"}', "'steps' must be a list"),
    ('{"session_id": "x", "start_s": -1, "steps": []}', "'start_s' must be a finite"),
    ('{"session_id": "x", "steps": [{"action": "jump", "think_s": 1}]}', "steps[0].action"),
    ('{"session_id": "x", "steps": [{"action": "w", "think_s": -1}]}', "steps[0].think_s"),
    ('{"meta": {}}', 'a {"meta": ...} line is only allowed first'),
    ('{"session_id": "s0003", "steps": []}', "duplicate session_id 's0003' (first on line 5)"),
]


@pytest.mark.parametrize(("line", "problem"), BAD)
def test_a_bad_last_line_is_the_error_read_trace_gives(
    tmp_path: Path, line: str, problem: str
) -> None:
    items = [SessionTrace(f"s{i:04d}", "m", float(i), (Step("w", 1.0),)) for i in range(40)]
    path = tmp_path / "bad.jsonl"
    write_trace(path, items, {"n": 40})
    with path.open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(TraceError) as parsed:
        read_trace(path)
    with pytest.raises(TraceError) as streamed:
        open_trace(path)
    assert streamed.value.line == parsed.value.line == 42
    assert str(streamed.value) == str(parsed.value)
    assert f"line 42: {problem}" in str(streamed.value)


def test_a_line_gone_bad_after_indexing_fails_the_run_naming_it(tmp_path: Path) -> None:
    """The replay parses each session again when it comes due: a line that no longer parses
    (the file was changed behind the index, size and mtime kept) fails the run with its line."""
    items = [SessionTrace(f"s{i}", f"m{i}", 30.0 * i, (Step("w", 1.0),)) for i in range(10)]
    path = tmp_path / "t.jsonl"
    write_trace(path, items)
    index = open_trace(path)
    st = os.stat(path)
    text = path.read_text().splitlines()
    text[8] = text[8].replace('"w"', '"q"')  # same length: an unknown action
    path.write_text("\n".join(text) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    reg = small_regime()
    sim = Simulation(index, reg, build_policy("none", reg), seed=0)
    with pytest.raises(TraceError, match=r"line 9: steps\[0\]\.action") as err:
        sim.run()
    assert err.value.line == 9
    assert sim.now == pytest.approx(30.0 * 7)  # discovered when session s8 came due, not before


def test_a_file_changed_since_it_was_opened_is_refused(tmp_path: Path) -> None:
    items = [SessionTrace(f"s{i}", "m", float(i), ()) for i in range(3)]
    path = tmp_path / "t.jsonl"
    write_trace(path, items)
    index = open_trace(path)
    write_trace(path, items[:2])
    with pytest.raises(TraceError, match="changed since it was opened"):
        list(index.in_arrival_order())
    path.unlink()
    with pytest.raises(TraceError, match="cannot read trace"):
        list(index.in_arrival_order())
    with pytest.raises(TraceError, match="cannot read trace"):
        open_trace(path)


class Watched(Simulation):
    """Checks after every plan that the replay holds no trace of a session that ended."""

    most = 0

    def _plan(self) -> None:
        super()._plan()
        assert len(self.held) <= self.sessions_open + 1  # the active ones and the next arrival
        assert set(self.held) >= set(self.steps)  # every open session's trace is there
        self.most = max(self.most, len(self.held))


@pytest.mark.parametrize("policy", ["none", "markov", "oracle"])
def test_the_replay_holds_only_active_sessions_and_the_next(tmp_path: Path, policy: str) -> None:
    # 60 sessions, a new one every 40 s, each over in ~30 s: at most 2 at once.
    items = [
        SessionTrace(f"s{i}", f"m{i % 4}", 40.0 * i, tuple(Step("w", 1.0) for _ in range(4)))
        for i in range(60)
    ]
    path = tmp_path / "t.jsonl"
    write_trace(path, items)
    reg = small_regime()
    sim = Watched(open_trace(path), reg, build_policy(policy, reg), seed=0, records=False)
    result = sim.run()
    assert result.tally is not None and len(result.tally.root_waits) == 60
    assert len(result.tally.waits) == 60 * 4
    assert sim.held == {} and sim.peak_held == sim.most <= result.peak_sessions + 1 <= 3
    if policy == "oracle":  # told each future on arrival, forgets it on eviction
        future = sim.policy.future  # type: ignore[attr-defined]
        assert set(future) <= {"s57", "s58", "s59"}  # the last ones, not yet evicted
        sim.live.prepare(sim.now + 1e3)  # evicts them too
        assert future == {}


def test_run_one_streams_a_trace_file_and_bounds_read_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, sessions(10, seed=8))
    whole, streamed = read_trace(path), open_trace(path)
    reg = small_regime()
    for name in ("markov", "oracle", "clairvoyant", "serial-chain"):
        assert run_one(streamed, reg, name, 1) == run_one(whole, reg, name, 1), name
