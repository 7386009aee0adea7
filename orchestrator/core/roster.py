"""The sessions and running jobs of a plan, indexed once and kept up to date by the shell (pure).

Why (issue 10): with 10^4 sessions and 5,000 running jobs, ``plan()`` spent most of an indexed
plan building the same indexes again every call: non-idle sessions by id, which session watches
which chunk, jobs by id, the running keys, speculative jobs per session, each a pass in pure
Python plus the garbage collector walking each fresh container. The live state already knows
what changed between two plans (a cursor moved, a job started or ended), so it keeps a
``Roster`` instead (``set_session`` / ``drop_session`` / ``set_job`` / ``drop_job``) and hands it
over as ``PlanInput.roster``; ``plan()`` then reads these maps and never passes over all
sessions or all jobs except where the decision itself needs each job (reachability, ``plan``
module doc).

Contract: a roster given as ``PlanInput.roster`` holds exactly ``PlanInput.sessions`` (by id,
the very views) and ``PlanInput.jobs`` (by id), with unique session ids and unique job ids (the
live state's are). Idleness is not in it: it depends on ``now`` and is checked per session read
(``frontier.is_idle``'s arithmetic). ``matches(inp)`` checks the contract (tests, debugging).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orchestrator.core.tree import Key
from orchestrator.core.types import PlanInput, RunningJob, SessionView


class Roster:
    """Sessions by id and by cursor, running jobs by id and by chunk key, speculative jobs.

    All maps are read-only to readers (``plan()``); only the four update methods change them,
    each in O(1) (O(sessions on one cursor) for a moving session).
    """

    __slots__ = ("_at", "_epoch", "_held", "_jobs", "_keys", "_log", "_sessions", "_spec")

    def __init__(self) -> None:
        self._sessions: dict[str, SessionView] = {}
        self._at: dict[str, list[SessionView]] = {}  # cursor chunk id -> sessions watching it
        self._jobs: dict[str, RunningJob] = {}
        self._spec: dict[str, RunningJob] = {}  # speculative jobs by id
        self._keys: dict[Key, int] = {}  # chunk key -> running jobs generating it
        self._held: dict[str, int] = {}  # session id -> speculative jobs attributed to it
        # Ids of the sessions set or dropped, in order, since the log last started over
        # (``_epoch`` counts the restarts): ``changed_since``.
        self._log: list[str] = []
        self._epoch = 0

    # ---- updates (the shell's) ---------------------------------------------------------------

    def set_session(self, view: SessionView) -> None:
        """Add a session or replace its view (same id)."""
        sid = view.session_id
        old = self._sessions.get(sid)
        if old is view:
            return
        if old is not None:
            self._unwatch(old)
        self._sessions[sid] = view
        self._at.setdefault(view.cursor_chunk_id, []).append(view)
        self._note(sid)

    def drop_session(self, session_id: str) -> None:
        """Forget a session (no-op when unknown)."""
        old = self._sessions.pop(session_id, None)
        if old is not None:
            self._unwatch(old)
            self._note(session_id)

    def _note(self, session_id: str) -> None:
        log = self._log
        if len(log) > 2 * len(self._sessions) + 1024:  # bounded: readers re-check everything
            log.clear()
            self._epoch += 1
        log.append(session_id)

    def _unwatch(self, view: SessionView) -> None:
        watchers = self._at[view.cursor_chunk_id]
        for i, v in enumerate(watchers):
            if v is view:
                del watchers[i]
                break
        if not watchers:
            del self._at[view.cursor_chunk_id]

    def set_job(self, job: RunningJob) -> None:
        """Add a running job or replace it (same id: an in-flight hit promoted it to demand)."""
        self.drop_job(job.job_id)
        self._jobs[job.job_id] = job
        key = (job.memory_id, job.parent_id, job.pose)
        self._keys[key] = self._keys.get(key, 0) + 1
        if job.kind == "speculative":
            self._spec[job.job_id] = job
            if job.session_id is not None:
                self._held[job.session_id] = self._held.get(job.session_id, 0) + 1

    def drop_job(self, job_id: str) -> None:
        """Forget a job that left its slot (no-op when unknown)."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        key = (job.memory_id, job.parent_id, job.pose)
        left = self._keys[key] - 1
        if left:
            self._keys[key] = left
        else:
            del self._keys[key]
        if self._spec.pop(job_id, None) is not None and job.session_id is not None:
            held = self._held[job.session_id] - 1
            if held:
                self._held[job.session_id] = held
            else:
                del self._held[job.session_id]

    # ---- reads (the core's) ------------------------------------------------------------------

    @property
    def sessions(self) -> Mapping[str, SessionView]:
        """Session id -> view (idle sessions included)."""
        return self._sessions

    def watching(self, chunk_id: str) -> list[SessionView]:
        """The sessions whose cursor is ``chunk_id`` (any memory, idle ones included; do not
        modify the list)."""
        return self._at.get(chunk_id, _NONE)

    @property
    def cursors(self) -> Mapping[str, list[SessionView]]:
        """Cursor chunk id -> the sessions watching it (``watching`` for every chunk at once,
        for hot loops that bind ``.get``; do not modify the lists)."""
        return self._at

    def mark(self) -> tuple[int, int]:
        """A position in the log of session changes, for ``changed_since``."""
        return (self._epoch, len(self._log))

    def changed_since(self, mark: tuple[int, int]) -> list[str] | None:
        """Ids of the sessions set (to another view) or dropped since ``mark`` was taken (with
        repeats), or None when the log started over since (then any session may have)."""
        epoch, at = mark
        return self._log[at:] if epoch == self._epoch else None

    @property
    def jobs(self) -> Mapping[str, RunningJob]:
        """Job id -> running job."""
        return self._jobs

    @property
    def speculative(self) -> Mapping[str, RunningJob]:
        """Job id -> running speculative job."""
        return self._spec

    @property
    def running_keys(self) -> Mapping[Key, int]:
        """Chunk key -> number of running jobs generating it (``key in running_keys``)."""
        return self._keys

    @property
    def held(self) -> Mapping[str, int]:
        """Session id -> running speculative jobs attributed to it (absent: none)."""
        return self._held

    def __iter__(self) -> Iterator[SessionView]:
        return iter(self._sessions.values())

    def __len__(self) -> int:
        return len(self._sessions)

    def matches(self, inp: PlanInput) -> bool:
        """True when the roster holds exactly ``inp.sessions`` (the same view objects, unique
        ids) and ``inp.jobs`` (equal jobs, unique ids): the contract of ``PlanInput.roster``."""
        if len(inp.sessions) != len(self._sessions) or len(inp.jobs) != len(self._jobs):
            return False
        if any(self._sessions.get(s.session_id) is not s for s in inp.sessions):
            return False
        if any(self._jobs.get(j.job_id) != j for j in inp.jobs):
            return False
        fresh = Roster()
        for s in inp.sessions:
            fresh.set_session(s)
        for j in inp.jobs:
            fresh.set_job(j)
        mine = {c: sorted(v.session_id for v in vs) for c, vs in self._at.items()}
        theirs = {c: sorted(v.session_id for v in vs) for c, vs in fresh._at.items()}
        return (mine, self._keys, self._held, self._spec.keys()) == (
            theirs, fresh._keys, fresh._held, fresh._spec.keys(),
        )  # fmt: skip

    @classmethod
    def of(cls, inp: PlanInput) -> Roster:
        """The roster of ``inp``'s sessions and jobs (ids must be unique)."""
        roster = cls()
        for s in inp.sessions:
            roster.set_session(s)
        for j in inp.jobs:
            roster.set_job(j)
        return roster


_NONE: list[SessionView] = []
