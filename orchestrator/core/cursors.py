"""Which sessions watch which chunk: the planner's reachability reads (``plan`` step b).

``Cursors`` indexes a collection of sessions by cursor chunk id; ``RosterCursors`` answers the
same questions from ``Roster``'s cursor map, filtering by activity at ``now`` on the fly, so no
map over all sessions is built per plan. Both answer per memory (a cursor on another memory's
chunk id never counts). Pure: values in, answers out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from orchestrator.core.roster import Roster
from orchestrator.core.types import Budget, RunningJob, SessionView

Want = set[tuple[str, int, str]]
"""(session id, depth, pose): a session whose depth-``depth`` proposals may name a job's key."""


class Cursors:
    """Which sessions watch which chunk (``survey``).

    Keyed by chunk id alone (no tuple per session); the memory is compared on lookup, as the
    reachability rule is per memory. Sessions sharing a cursor are kept in a second dict.
    """

    __slots__ = ("_many", "_one")

    def __init__(self, sessions: Collection[SessionView]) -> None:
        self._one = {s.cursor_chunk_id: s for s in sessions}
        self._many: dict[str, list[SessionView]] = {}
        if len(self._one) != len(sessions):
            for s in sessions:
                self._many.setdefault(s.cursor_chunk_id, []).append(s)
            self._many = {c: ss for c, ss in self._many.items() if len(ss) > 1}
            for chunk_id in self._many:
                del self._one[chunk_id]

    def near(self, job: RunningJob, depth: int) -> bool:
        """True when a session on the job's memory watches its chunk or, with ``depth`` >= 1,
        its parent: ``survey``'s answer for those two links alone (no ``want``)."""
        memory, one = job.memory_id, self._one
        s = one.get(job.chunk_id)
        if s is not None and s.memory_id == memory:
            return True
        parent = job.parent_id if depth > 0 else None
        if parent is not None:
            s = one.get(parent)
            if s is not None and s.memory_id == memory:
                return True
        if self._many:
            for chunk_id in (job.chunk_id, parent):
                for s in self._many.get(chunk_id, ()) if chunk_id is not None else ():
                    if s.memory_id == memory:
                        return True
        return False

    def far(self, jobs: Iterable[RunningJob], depth: int) -> list[RunningJob]:
        """The jobs ``near`` is False for, in order."""
        near = self.near
        return [j for j in jobs if not near(j, depth)]

    def reaches(self, job: RunningJob, chunk_ids: Iterable[str]) -> bool:
        """True when a session on the job's memory watches one of ``chunk_ids``: ``survey``'s
        answer when ``chunk_ids`` are the job's chunk and ancestors, without its ``want``."""
        memory, one, many = job.memory_id, self._one, self._many
        for chunk_id in chunk_ids:
            s = one.get(chunk_id)
            if s is not None and s.memory_id == memory:
                return True
            if many:
                for s in many.get(chunk_id, ()):
                    if s.memory_id == memory:
                        return True
        return False

    def survey(self, job: RunningJob, ancestors: list[str], want: Want) -> bool:
        """True when a session on the job's memory watches its chunk or one of ``ancestors``
        (parent first). Adds (session id, depth, job pose) to ``want`` for every session that
        watches the ancestor ``depth`` levels up: its depth-``depth`` proposals may name the
        job's key."""
        memory, pose, one = job.memory_id, job.pose, self._one
        s = one.get(job.chunk_id)
        seen = s is not None and s.memory_id == memory
        for depth, chunk_id in enumerate(ancestors, 1):
            s = one.get(chunk_id)
            if s is not None and s.memory_id == memory:
                want.add((s.session_id, depth, pose))
                seen = True
        if self._many:
            for depth, chunk_id in enumerate((job.chunk_id, *ancestors)):
                for s in self._many.get(chunk_id, ()):
                    if s.memory_id == memory:
                        seen = True
                        if depth:
                            want.add((s.session_id, depth, pose))
        return seen


class RosterCursors:
    """``Cursors`` over the roster's cursor map: the sessions watching a chunk are read from
    ``Roster.watching`` and kept only when active (``active``) or idle (not ``active``) at
    ``now`` (``frontier.active_by_id``'s test), so no map over all sessions is built."""

    __slots__ = ("_active", "_at", "_now", "_timeout", "_watching")

    def __init__(self, roster: Roster, now: float, budget: Budget, active: bool) -> None:
        self._watching = roster.watching
        self._at = roster.cursors.get
        self._now, self._timeout, self._active = now, budget.idle_timeout_s, active

    def _on(self, chunk_id: str | None, memory: str) -> list[SessionView]:
        if chunk_id is None:
            return []
        now, timeout, active = self._now, self._timeout, self._active
        return [
            s for s in self._watching(chunk_id)
            if s.memory_id == memory
            and active is not (now - s.last_active_at
                               > (timeout if (own := s.idle_after_s) is None or timeout < own
                                  else own))
        ]  # fmt: skip

    def near(self, job: RunningJob, depth: int) -> bool:
        """``Cursors.near``: ``reaches`` over the job's chunk and, below depth 0, its parent."""
        parent = job.parent_id if depth > 0 else None
        return self.reaches(job, (job.chunk_id,) if parent is None else (job.chunk_id, parent))

    def far(self, jobs: Iterable[RunningJob], depth: int) -> list[RunningJob]:
        """``Cursors.far``: ``near``'s loop inlined (one pass over every speculative job, each
        plan: with 5,000 jobs the calls cost more than the two dict reads they make)."""
        at = self._at
        now, timeout, active = self._now, self._timeout, self._active
        out = []
        for job in jobs:
            memory = job.memory_id
            # The parent first: a depth-1 guess (most of them) hangs below its session's cursor.
            for chunk_id in (job.parent_id if depth > 0 else None, job.chunk_id):
                watchers = at(chunk_id) if chunk_id is not None else None
                if watchers is None:
                    continue
                for s in watchers:
                    if s.memory_id == memory and active is not (
                        now - s.last_active_at
                        > (timeout if (own := s.idle_after_s) is None or timeout < own else own)
                    ):
                        break  # watched by an active session
                else:
                    continue  # nobody active here: try the other chunk
                break
            else:
                out.append(job)
        return out

    def reaches(self, job: RunningJob, chunk_ids: Iterable[str]) -> bool:
        """``Cursors.reaches``: stops at the first session found (no list per chunk)."""
        at, memory = self._at, job.memory_id
        now, timeout, active = self._now, self._timeout, self._active
        for chunk_id in chunk_ids:
            watchers = at(chunk_id)
            if watchers is None:
                continue
            for s in watchers:
                if s.memory_id == memory and active is not (
                    now - s.last_active_at
                    > (timeout if (own := s.idle_after_s) is None or timeout < own else own)
                ):
                    return True
        return False

    def survey(self, job: RunningJob, ancestors: list[str], want: Want) -> bool:
        """``Cursors.survey``."""
        memory, pose = job.memory_id, job.pose
        seen = bool(self._on(job.chunk_id, memory))
        for depth, chunk_id in enumerate(ancestors, 1):
            for s in self._on(chunk_id, memory):
                want.add((s.session_id, depth, pose))
                seen = True
        return seen
