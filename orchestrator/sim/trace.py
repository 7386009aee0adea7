"""Viewer traces: the simulator's input (DESIGN.md, "Traces"), read and written as JSON Lines.

One session per line::

    {"session_id": "s1", "memory": "m1", "start_s": 0.0,
     "steps": [{"action": "w", "think_s": 2.4}, {"action": "right", "think_s": 0.8}]}

- ``session_id`` (required, non-empty string, unique in the file).
- ``memory`` (optional string; default: a memory of its own, ``"session:<session_id>"``):
  sessions on one memory share one chunk tree.
- ``start_s`` (optional, default 0): arrival time in seconds, finite and >= 0.
- ``steps`` (required list, may be empty): ``action`` is an action name
  (``orchestrator.core.poses.normalize_action``: ``w s a d left right up down`` or a move key plus
  a camera key joined by ``+``), stored canonical (``"Right+W"`` -> ``"w+right"``); ``think_s`` is
  the seconds the viewer spent deciding after the previous chunk finished playing (finite, >= 0).
- An optional first line ``{"meta": {...}}`` describes the trace; it is kept and reported.
- Unknown keys are ignored; blank lines are skipped (they still count for line numbers). Any other
  problem raises ``TraceError`` naming the 1-based line number and what was wrong. Lines end with
  a newline (a carriage return before it is ignored).

Two ways to read a file:

- ``read_trace(path) -> Trace``: every session parsed into memory. The bounds of
  ``orchestrator.sim.bound`` need this (a schedule over the whole trace), as do calibration's
  training traces and tests building traces by hand.
- ``orchestrator.sim.trace_file.open_trace(path) -> TraceFile``: indexed in one cheap pass, then
  streamed a session at a time, so that a replay's memory does not grow with the trace (issue
  10); that module's doc says what the index keeps and what it costs.

Both are a ``SessionSource``, what ``orchestrator.sim.engine.Simulation`` replays.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.core.poses import PoseError, normalize_action

__all__ = [
    "SessionSource",
    "SessionTrace",
    "Step",
    "Trace",
    "TraceError",
    "dumps_session",
    "future_actions",
    "parse_trace",
    "read_trace",
    "write_trace",
]


class TraceError(ValueError):
    """A trace line broke the format; ``str(err)`` names the source, the line and the problem.

    Attributes:
        line: 1-based line number (None for a problem with the whole file, e.g. unreadable).
        problem: what was wrong, e.g. ``"steps[2].think_s must be a number >= 0 (got -1)"``.
    """

    def __init__(self, line: int | None, problem: str, source: str = "trace") -> None:
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Step:
    """One choice: the canonical ``action`` taken after thinking ``think_s`` seconds."""

    action: str
    think_s: float


@dataclass(frozen=True, slots=True)
class SessionTrace:
    """One viewer's walk: arrives at ``start_s`` (seconds), then takes ``steps`` in order."""

    session_id: str
    memory: str
    start_s: float
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed trace: sessions in file order, the optional meta object and where it came from."""

    sessions: tuple[SessionTrace, ...]
    meta: dict[str, Any] | None = None
    source: str = "trace"
    memories: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.memories:
            seen = dict.fromkeys(s.memory for s in self.sessions)
            object.__setattr__(self, "memories", tuple(seen))

    @property
    def step_count(self) -> int:
        """Total steps (chunk requests after the roots) over all sessions."""
        return sum(len(s.steps) for s in self.sessions)

    @property
    def session_count(self) -> int:
        """Number of sessions."""
        return len(self.sessions)

    @property
    def first_start_s(self) -> float:
        """The earliest ``start_s`` (seconds; 0.0 for no session)."""
        return min((s.start_s for s in self.sessions), default=0.0)

    def arrivals_per_memory(self) -> dict[str, int]:
        """memory -> sessions on it (a new dict)."""
        counts: dict[str, int] = {}
        for s in self.sessions:
            counts[s.memory] = counts.get(s.memory, 0) + 1
        return counts

    def in_arrival_order(self) -> Iterator[SessionTrace]:
        """The sessions by ``start_s``, ties in file order."""
        return iter(sorted(self.sessions, key=lambda s: s.start_s))


class SessionSource(Protocol):
    """What a replay (``orchestrator.sim.engine.Simulation``) reads: a ``Trace`` in memory or a
    ``TraceFile`` streamed from disk. ``in_arrival_order`` may be called more than once."""

    @property
    def source(self) -> str:
        """Where the sessions come from (a path, or a label)."""
        ...

    @property
    def session_count(self) -> int:
        """Number of sessions ``in_arrival_order`` yields."""
        ...

    @property
    def meta(self) -> dict[str, Any] | None:
        """The trace's optional meta object (a synthetic trace's generator knobs: ``sim.bayes``)."""
        ...

    @property
    def first_start_s(self) -> float:
        """The earliest ``start_s`` (0.0 for no session)."""
        ...

    def arrivals_per_memory(self) -> dict[str, int]:
        """memory -> sessions on it (a new dict, the caller may change it)."""
        ...

    def in_arrival_order(self) -> Iterator[SessionTrace]:
        """The sessions sorted by ``start_s``, ties in file order (raises ``TraceError``)."""
        ...


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number (got {json.dumps(value)})")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0 (got {json.dumps(value)})")
    return number


def _step(raw: object, index: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f'{where} must be an object like {{"action": "w", "think_s": 1.5}}')
    if "action" not in raw:
        raise ValueError(f"{where} has no 'action'")
    if "think_s" not in raw:
        raise ValueError(f"{where} has no 'think_s' (seconds spent deciding)")
    action = raw["action"]
    if not isinstance(action, str):
        raise ValueError(f"{where}.action must be a string (got {json.dumps(action)})")
    try:
        canonical = normalize_action(action)
    except PoseError as err:
        raise ValueError(f"{where}.action: {err.rule}") from err
    return Step(canonical, _number(raw["think_s"], f"{where}.think_s"))


def _session(obj: dict[str, Any]) -> SessionTrace:
    sid = obj.get("session_id")
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"'session_id' must be a non-empty string (got {json.dumps(sid)})")
    memory = obj.get("memory", f"session:{sid}")
    if not isinstance(memory, str) or not memory:
        raise ValueError(f"'memory' must be a non-empty string (got {json.dumps(memory)})")
    start = _number(obj.get("start_s", 0.0), "'start_s'")
    steps = obj.get("steps")
    if not isinstance(steps, list):
        raise ValueError(f"'steps' must be a list of steps (got {json.dumps(steps)})")
    return SessionTrace(sid, memory, start, tuple(_step(s, i) for i, s in enumerate(steps)))


def _json_object(number: int, line: str, source: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        problem = f"not valid JSON ({err.msg} at column {err.colno})"
        raise TraceError(number, problem, source) from err
    if not isinstance(obj, dict):
        raise TraceError(number, "expected a JSON object (one session per line)", source)
    return obj


def _session_line(number: int, obj: dict[str, Any], source: str) -> SessionTrace:
    try:
        return _session(obj)
    except ValueError as err:
        raise TraceError(number, str(err), source) from err


class _Checker:
    """The line rules of ``parse_trace`` fed one line at a time (shared with ``open_trace``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.first_line: dict[str, int] = {}  # session_id -> its line, for duplicates
        self.meta: dict[str, Any] | None = None
        self.meta_line: int | None = None
        self.seen_content = False

    def feed(self, number: int, line: str) -> SessionTrace | None:
        """The line's session; None for a blank or the meta line. Raises ``TraceError``."""
        if not line.strip():
            return None
        obj = _json_object(number, line, self.source)
        if "meta" in obj and "session_id" not in obj:
            if self.seen_content:
                raise TraceError(number, 'a {"meta": ...} line is only allowed first', self.source)
            if not isinstance(obj["meta"], dict):
                raise TraceError(number, "'meta' must be an object", self.source)
            self.meta, self.meta_line = obj["meta"], number
            self.seen_content = True
            return None
        self.seen_content = True
        session = _session_line(number, obj, self.source)
        earlier = self.first_line.setdefault(session.session_id, number)
        if earlier != number:
            problem = f"duplicate session_id {session.session_id!r} (first on line {earlier})"
            raise TraceError(number, problem, self.source)
        return session


def parse_trace(lines: Iterable[str], source: str = "trace") -> Trace:
    """Parse JSON Lines text (an iterable of lines) into a ``Trace``.

    Raises:
        TraceError: a line is not JSON, not an object, a misplaced or malformed meta line, a
            duplicate session_id, or a session or step field breaking the rules above.
    """
    checker = _Checker(source)
    sessions: list[SessionTrace] = []
    for number, line in enumerate(lines, start=1):
        session = checker.feed(number, line)
        if session is not None:
            sessions.append(session)
    return Trace(tuple(sessions), checker.meta, source)


def read_trace(path: Path | str) -> Trace:
    """Read a JSON Lines trace file (UTF-8) into memory (every session parsed).

    Raises:
        TraceError: the file cannot be read (line None) or a line is malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(None, f"cannot read trace: {err}", str(path)) from err
    return parse_trace(text.split("\n"), str(path))


def dumps_session(session: SessionTrace) -> str:
    """One JSON line (no newline) for ``session``, keys in the documented order."""
    return json.dumps(
        {
            "session_id": session.session_id,
            "memory": session.memory,
            "start_s": round(session.start_s, 6),
            "steps": [{"action": s.action, "think_s": round(s.think_s, 6)} for s in session.steps],
        },
        separators=(", ", ": "),
    )


def write_trace(
    path: Path | str, sessions: Iterable[SessionTrace], meta: Mapping[str, Any] | None = None
) -> int:
    """Write ``sessions`` (and a first ``{"meta": ...}`` line when given) as JSON Lines.

    Returns:
        The number of sessions written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        if meta is not None:
            fh.write(json.dumps({"meta": dict(meta)}, sort_keys=True) + "\n")
        for session in sessions:
            fh.write(dumps_session(session) + "\n")
            count += 1
    return count


def future_actions(trace: Trace) -> dict[str, list[str]]:
    """session_id -> its actions in order: the ``future`` the ``oracle`` policy is built from."""
    return {s.session_id: [step.action for step in s.steps] for s in trace.sessions}
