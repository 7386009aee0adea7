"""traces export: request rows -> trace sessions with think times, on hand-computed rows."""

from __future__ import annotations

import datetime as dt

from orchestrator.sim.export import sessions_from_rows
from orchestrator.sim.trace import Step, dumps_session, parse_trace

T0 = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)


def _row(session: str, action: str, requested: float, served: float) -> dict[str, object]:
    return {
        "session_id": session,
        "memory_id": "m1",
        "action": action,
        "requested_at": T0 + dt.timedelta(seconds=requested),
        "served_at": T0 + dt.timedelta(seconds=served),
    }


def test_think_time_is_the_gap_minus_watching() -> None:
    rows = [
        _row("a", "w", 10.0, 14.0),  # served at 14, watched 5.2 s until 19.2
        _row("a", "left", 21.0, 21.0),  # asked 1.8 s after the chunk ended
        _row("a", "d", 24.0, 30.0),  # asked while still watching: think 0
        _row("b", "w", 12.5, 13.0),
    ]
    sessions = sessions_from_rows(rows, chunk_duration_s=5.2)
    assert [s.session_id for s in sessions] == ["a", "b"]
    a, b = sessions
    assert a.start_s == 0.0 and b.start_s == 2.5
    assert a.memory == "m1"
    assert a.steps == (Step("w", 0.0), Step("left", 1.8), Step("d", 0.0))
    # What export writes, the simulator reads back unchanged.
    parsed = parse_trace([dumps_session(s) for s in sessions])
    assert [s.steps for s in parsed.sessions] == [a.steps, b.steps]


def test_no_rows_no_sessions() -> None:
    assert sessions_from_rows([], 5.2) == []
