"""A trace file streamed a session at a time, so that a replay's memory is flat in its length.

``read_trace`` (``orchestrator.sim.trace``) parses every session into memory: for the 3,000-session
trace of ``benchmarks/sim_scale.py`` that was about 7.5 MiB of a replay's peak RSS (``none``:
58.7 MiB read whole, 51.0 streamed, 2026-12-03), and it grew with the trace (issue 10).
``open_trace(path)`` instead makes one cheap first pass and returns a ``TraceFile``, an index;
``TraceFile.in_arrival_order()`` then reads and parses the sessions one at a time, and the engine
(``orchestrator.sim.engine.Simulation``) asks for the next only when the previous arrival comes
due on its event heap, and drops each session when it ends. The replay holds the sessions
active at the time plus the next to arrive, whatever the trace's length.

The first pass reads every line once and checks it exactly as ``parse_trace`` does (the same
``TraceError`` for the same file, the same line: a bad line anywhere, even the last, fails before
the replay starts; the checks cost about 0.1 s per 57,000 steps). It keeps only what a replay
needs before the first arrival:

- the session and step counts, the earliest ``start_s``, and sessions per memory (the engine
  drops a memory's stored chunks after its last arrival): a dict entry per memory;
- whether the session lines are sorted by ``start_s``. If they are (``write_synthetic`` and
  ``rewind traces export`` write them so), the second pass streams straight through the file and
  nothing is kept per line. If not, it keeps, per session in arrival order (ties in file order,
  as ``Trace.in_arrival_order``), the line's byte offset and line number in two ``array``
  columns, 16 bytes a session (48 KB for 3,000 sessions), and the second pass reads each line by
  seek. Sorting them builds a list of the session indices once, during the first pass.

During the first pass only, a dict of session ids finds duplicates (``parse_trace``'s rule); it
is freed before the replay. Each pass checks the file's size and mtime against the index, and a
line that no longer parses, a session out of arrival order or a missing one raises
``TraceError`` (with the line number when there is one): the file changed since it was opened.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.sim.trace import (
    SessionTrace,
    Trace,
    TraceError,
    _Checker,
    _json_object,
    _session_line,
    read_trace,
)

__all__ = ["TraceFile", "open_trace"]

_CHANGED = "the trace changed since it was opened"


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True, slots=True)
class TraceFile:
    """A trace file indexed by ``open_trace``, streamed session by session (module doc); a
    ``orchestrator.sim.trace.SessionSource``. Small and picklable (a process pool can take it).

    Attributes:
        path, source: the file, and its name in errors.
        meta: the optional meta object.
        session_count, step_count: sessions and steps in the file.
        first_start_s: the earliest ``start_s`` (seconds; 0.0 for no session).
        memory_sessions: memory -> sessions on it, in file order of first appearance.
        in_order: the session lines are sorted by ``start_s`` (streamed straight through).
        meta_line: the meta line's number (None: none).
        stamp: the file's (size in bytes, mtime in ns) when indexed.
        offsets, line_numbers: unsorted files only, per session in arrival order, the line's
            byte offset and 1-based number (empty when ``in_order``).
    """

    path: Path
    source: str
    meta: dict[str, Any] | None
    session_count: int
    step_count: int
    first_start_s: float
    memory_sessions: dict[str, int]
    in_order: bool
    meta_line: int | None
    stamp: tuple[int, int]
    offsets: array[int] = field(default_factory=lambda: array("q"))
    line_numbers: array[int] = field(default_factory=lambda: array("q"))

    @property
    def memories(self) -> tuple[str, ...]:
        """The memories, in file order of first appearance."""
        return tuple(self.memory_sessions)

    def arrivals_per_memory(self) -> dict[str, int]:
        """memory -> sessions on it (a new dict)."""
        return dict(self.memory_sessions)

    def read(self) -> Trace:
        """The whole trace parsed into memory (``read_trace``), for what needs all of it at
        once (the bounds of ``orchestrator.sim.bound``)."""
        return read_trace(self.path)

    def in_arrival_order(self) -> Iterator[SessionTrace]:
        """The sessions by ``start_s`` (ties in file order), each read and parsed when asked for.

        Raises:
            TraceError: the file cannot be read or changed since ``open_trace`` (line None when
                no line is to blame), or a line no longer parses (its line number).
        """
        try:
            fh = self.path.open("rb")
        except OSError as err:
            raise TraceError(None, f"cannot read trace: {err}", self.source) from err
        with fh:
            if _stamp(self.path) != self.stamp:
                raise TraceError(None, _CHANGED, self.source)
            lines = self._straight(fh) if self.in_order else self._by_seek(fh)
            count, last = 0, -math.inf
            for number, raw in lines:
                session = self._parse(number, raw)
                if session.start_s < last:
                    raise TraceError(number, f"{_CHANGED} (out of arrival order)", self.source)
                last = session.start_s
                count += 1
                yield session
        if count != self.session_count:
            raise TraceError(None, f"{_CHANGED} ({count} sessions, not {self.session_count})",
                             self.source)  # fmt: skip

    def _straight(self, fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
        for number, raw in enumerate(fh, start=1):
            if number != self.meta_line and raw.strip():
                yield number, raw

    def _by_seek(self, fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
        for offset, number in zip(self.offsets, self.line_numbers, strict=True):
            fh.seek(offset)
            yield number, fh.readline()

    def _parse(self, number: int, raw: bytes) -> SessionTrace:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TraceError(number, f"cannot read trace: {err}", self.source) from err
        obj = _json_object(number, line, self.source)
        if "session_id" not in obj:
            raise TraceError(number, f"{_CHANGED} (not a session line)", self.source)
        return _session_line(number, obj, self.source)


def open_trace(path: Path | str) -> TraceFile:
    """Index a JSON Lines trace file for streaming (module doc): one pass, every line checked.

    Raises:
        TraceError: as ``read_trace`` would, for the same file (the same line and problem).
    """
    path = Path(path)
    source = str(path)
    checker = _Checker(source)
    offsets, numbers, starts = array("q"), array("q"), array("d")
    memories: dict[str, int] = {}
    steps, in_order, last = 0, True, -math.inf
    try:
        stamp = _stamp(path)
        with path.open("rb") as fh:
            offset = 0
            for number, raw in enumerate(fh, start=1):
                here, offset = offset, offset + len(raw)
                session = checker.feed(number, raw.decode("utf-8"))
                if session is None:
                    continue
                offsets.append(here)
                numbers.append(number)
                starts.append(session.start_s)
                in_order = in_order and session.start_s >= last
                last = session.start_s
                memories[session.memory] = memories.get(session.memory, 0) + 1
                steps += len(session.steps)
    except (OSError, UnicodeDecodeError) as err:
        raise TraceError(None, f"cannot read trace: {err}", source) from err
    first = min(starts, default=0.0)
    count = len(starts)
    if in_order:  # streamed straight through: nothing kept per line
        offsets, numbers = array("q"), array("q")
    else:  # a stable sort: ties keep file order
        order = sorted(range(count), key=starts.__getitem__)
        offsets = array("q", (offsets[i] for i in order))
        numbers = array("q", (numbers[i] for i in order))
    return TraceFile(path, source, checker.meta, count, steps, first, memories, in_order,
                     checker.meta_line, stamp, offsets, numbers)  # fmt: skip
