"""Trace files (DESIGN.md "Traces"): parsing, defaults, errors naming the line, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.sim.synth import SynthKnobs, knobs_from, synthesize, write_synthetic
from orchestrator.sim.trace import (
    SessionTrace,
    Step,
    TraceError,
    future_actions,
    parse_trace,
    read_trace,
    write_trace,
)

GOOD = (
    '{"session_id": "s1", "memory": "m1", "start_s": 0.0, "steps": '
    '[{"action": "w", "think_s": 2.4}, {"action": "right", "think_s": 0.8}]}'
)


def test_the_design_example_parses() -> None:
    trace = parse_trace([GOOD])
    (s,) = trace.sessions
    assert s == SessionTrace("s1", "m1", 0.0, (Step("w", 2.4), Step("right", 0.8)))
    assert trace.meta is None and trace.memories == ("m1",) and trace.step_count == 2


def test_defaults_meta_unknown_keys_and_canonical_actions() -> None:
    lines = [
        '{"meta": {"source": "test", "n": 2}}',
        "",
        '{"session_id": "a", "steps": [{"action": "Right + W", "think_s": 1, "x": 1}], "y": 2}',
        '{"session_id": "b", "start_s": 5, "steps": []}',
    ]
    trace = parse_trace(lines)
    assert trace.meta == {"source": "test", "n": 2}
    a, b = trace.sessions
    assert a.memory == "session:a" and a.start_s == 0.0  # one memory per session by default
    assert a.steps == (Step("w+right", 1.0),)
    assert b.memory == "session:b" and b.start_s == 5.0 and b.steps == ()
    assert future_actions(trace) == {"a": ["w+right"], "b": []}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"steps": []}', "'session_id' must be a non-empty string"),
        ('{"session_id": 7, "steps": []}', "'session_id' must be a non-empty string"),
        ('{"session_id": "x"}', "'steps' must be a list"),
        ('{"session_id": "x", "memory": "", "steps": []}', "'memory' must be"),
        ('{"session_id": "x", "start_s": -1, "steps": []}', "'start_s' must be a finite"),
        ('{"session_id": "x", "start_s": true, "steps": []}', "'start_s' must be a number"),
        ('{"session_id": "x", "steps": ["w"]}', "steps[0] must be an object"),
        ('{"session_id": "x", "steps": [{"think_s": 1}]}', "steps[0] has no 'action'"),
        ('{"session_id": "x", "steps": [{"action": "w"}]}', "steps[0] has no 'think_s'"),
        ('{"session_id": "x", "steps": [{"action": "w+a", "think_s": 1}]}', "unknown action"),
        ('{"session_id": "x", "steps": [{"action": 3, "think_s": 1}]}', "must be a string"),
        ('{"session_id": "x", "steps": [{"action": "w", "think_s": -2}]}', "think_s must be"),
        ('{"session_id": "x", "steps": [{"action": "w", "think_s": "2"}]}', "think_s must be"),
    ],
)
def test_a_malformed_line_names_its_number_and_problem(line: str, problem: str) -> None:
    with pytest.raises(TraceError) as err:
        parse_trace([GOOD, "", line, GOOD.replace("s1", "s9")], source="t.jsonl")
    assert err.value.line == 3
    assert str(err.value).startswith("t.jsonl line 3: ")
    assert problem in str(err.value)


def test_duplicate_sessions_and_late_meta_are_errors() -> None:
    with pytest.raises(TraceError, match=r"line 2: duplicate session_id 's1' \(first on line 1\)"):
        parse_trace([GOOD, GOOD])
    with pytest.raises(TraceError, match=r"line 2: a .*meta.* line is only allowed first"):
        parse_trace([GOOD, '{"meta": {}}'])
    with pytest.raises(TraceError, match="line 1: 'meta' must be an object"):
        parse_trace(['{"meta": []}'])


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    sessions = [
        SessionTrace("s1", "m1", 1.5, (Step("w", 0.25), Step("a+left", 3.0))),
        SessionTrace("s2", "m1", 0.0, ()),
    ]
    path = tmp_path / "t.jsonl"
    assert write_trace(path, sessions, {"made_by": "test"}) == 2
    trace = read_trace(path)
    assert list(trace.sessions) == sessions and trace.meta == {"made_by": "test"}
    assert json.loads(path.read_text().splitlines()[1])["session_id"] == "s1"


def test_unreadable_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read trace"):
        read_trace(tmp_path / "missing.jsonl")


def test_synthetic_traces_are_deterministic_and_follow_the_knobs(tmp_path: Path) -> None:
    knobs = SynthKnobs(sessions=30, sessions_per_memory=5, steps_min=10, steps_max=10, seed=3)
    assert synthesize(knobs) == synthesize(knobs)
    assert synthesize(knobs) != synthesize(knobs_from(knobs, seed=4))
    sessions = synthesize(knobs)
    assert len({s.memory for s in sessions}) == 6
    assert all(len(s.steps) == 10 for s in sessions)
    starts = [s.start_s for s in sessions]
    assert starts == sorted(starts) and starts[0] == 0.0
    sticky = synthesize(knobs_from(knobs, persistence=1.0))
    assert all(len({step.action for step in s.steps}) == 1 for s in sticky)
    fixed = synthesize(knobs_from(knobs, think_cv=0.0, think_mean_s=2.5))
    assert {step.think_s for s in fixed for step in s.steps} == {2.5}
    path = tmp_path / "synth.jsonl"
    assert write_synthetic(path, knobs) == 30
    trace = read_trace(path)
    assert trace.meta is not None and trace.meta["knobs"]["seed"] == 3
    assert list(trace.sessions) == [
        SessionTrace(s.session_id, s.memory, round(s.start_s, 6),
                     tuple(Step(x.action, round(x.think_s, 6)) for x in s.steps))
        for s in sessions
    ]  # fmt: skip


def test_synth_knobs_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown synth knob"):
        knobs_from(None, persistance=0.5)
    with pytest.raises(ValueError, match="persistence must be in"):
        SynthKnobs(persistence=1.5)
    with pytest.raises(ValueError, match="steps_max must be >= steps_min"):
        SynthKnobs(steps_min=5, steps_max=2)


def test_human_viewers_walk_mostly_forward_and_think_briefly() -> None:
    from collections import Counter

    from orchestrator.sim.synth import SynthKnobs, synthesize

    sessions = synthesize(SynthKnobs(sessions=300, viewer="human", persistence=0.3, seed=3))
    actions = Counter(step.action for s in sessions for step in s.steps)
    n = sum(actions.values())
    assert 0.65 < actions["w"] / n < 0.75
    assert 0.10 < actions["left"] / n < 0.15 and 0.10 < actions["right"] / n < 0.15
    thinks = [step.think_s for s in sessions for step in s.steps]
    assert min(thinks) >= 0.5 and max(thinks) <= 2.0
    with pytest.raises(ValueError, match="forward_share"):
        SynthKnobs(viewer="human", forward_share=0.9, turn_share=0.1)
    with pytest.raises(ValueError, match="viewer must be one of"):
        SynthKnobs(viewer="robot")
