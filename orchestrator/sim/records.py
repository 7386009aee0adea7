"""What a simulation run records: jobs, requests and the run's result (seconds, GPU-seconds).

``Tally`` is what ``orchestrator.sim.metrics.summarize`` reads: per request its wait and per job
its GPU-seconds, startup and flags (a few bytes each, in request / start order), and counters.
The engine streams it as it goes, so a run need not keep a ``RequestRecord`` and a
``JobRecord`` (hundreds of bytes each) per request and per job; with ``records=True`` (the
default, tests and the differential test read them) it keeps those too. ``Tally.of`` builds the
same tally from records (the bounds of ``orchestrator.sim.bound``).

``time_free`` (which policies may have their proposals cached) lives in ``policies.registry``
and is re-exported here.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.core.types import JobKind, Outcome
from policies.registry import time_free

__all__ = [
    "LEAD_KEYS",
    "JobRecord",
    "RequestRecord",
    "SimResult",
    "SimulationError",
    "Tally",
    "lead_of",
    "time_free",
]

LEAD_KEYS = ("before_arrival", "steps_2_plus", "step_1", "on_request")
"""The ``lead`` classes of ``orchestrator.sim.metrics`` (its module doc), in report order."""

SPECULATIVE, USED, COLD = 1, 2, 4
"""``Tally.flags`` bits: speculative start; used (a request found it); on a booting container."""


class SimulationError(RuntimeError):
    """The core returned a plan the shell cannot carry out (a core bug), or the pool overflowed."""


@dataclass(slots=True)
class JobRecord:
    """One generation: times in seconds, GPU-seconds = ``ended_at - started_at``."""

    job_id: str
    chunk_id: str
    memory_id: str
    initial_kind: JobKind
    kind: JobKind
    session_id: str | None
    depth: int
    probability: float
    started_at: float
    startup_s: float
    generation_s: float
    cold: bool
    expected_gpu_s: float
    ended_at: float | None = None
    cancel_reason: str | None = None
    used: bool = False

    @property
    def ends_at(self) -> float:
        """When the generation completes if not cancelled (seconds)."""
        return self.started_at + self.startup_s + self.generation_s

    @property
    def gpu_s(self) -> float:
        """GPU-seconds the job held its slot (0 while still running)."""
        return 0.0 if self.ended_at is None else self.ended_at - self.started_at


@dataclass(slots=True)
class RequestRecord:
    """One chunk request: ``step`` is the trace step index, -1 for the root chunk."""

    session_id: str
    memory_id: str
    step: int
    chunk_id: str
    requested_at: float
    outcome: Outcome
    served_at: float | None = None

    @property
    def wait_s(self) -> float:
        """Seconds from request to ready (requires ``served_at``)."""
        assert self.served_at is not None
        return self.served_at - self.requested_at


def lead_of(started: float, requested_at: float, arrival: float, two_back: float | None) -> str:
    """A request's ``lead`` class (``LEAD_KEYS``): when the job that produced its chunk
    ``started``, against the session's ``arrival`` (its root request), the request two steps
    back (None when there is none) and the request itself (seconds)."""
    if started < arrival:
        return "before_arrival"
    if two_back is not None and started < two_back:
        return "steps_2_plus"
    if started < requested_at:
        return "step_1"
    return "on_request"


class Tally:
    """The run's figures as ``metrics.summarize`` reads them (module doc).

    Attributes:
        waits: each trace step's wait (seconds), in request order (NaN until served).
        root_waits: each root request's wait (seconds), in request order.
        outcomes: trace steps per outcome (hit / inflight / miss).
        gpu_s: each job's slot time (GPU-seconds, 0 until it ends), in start order.
        startup_s: each job's startup (cold load) seconds, in start order.
        flags: each job's ``SPECULATIVE`` / ``USED`` / ``COLD`` bits, in start order.
        reasons: cancelled jobs per cancel reason.
        lead: trace steps per ``lead`` class (steps whose chunk no job completed are left out).
    """

    __slots__ = ("flags", "gpu_s", "lead", "outcomes", "reasons", "root_waits", "startup_s",
                 "waits")  # fmt: skip

    def __init__(self) -> None:
        self.waits = array("d")
        self.root_waits = array("d")
        self.outcomes: Counter[str] = Counter()
        self.gpu_s = array("d")
        self.startup_s = array("d")
        self.flags = bytearray()
        self.reasons: Counter[str] = Counter()
        self.lead: Counter[str] = Counter()

    def request(self, step: int, outcome: Outcome) -> int:
        """A request was made (``step`` -1: a root); returns its index for ``served``."""
        if step < 0:
            self.root_waits.append(float("nan"))
            return -len(self.root_waits)
        self.outcomes[outcome] += 1
        self.waits.append(float("nan"))
        return len(self.waits) - 1

    def served(self, index: int, wait_s: float) -> None:
        """Request ``index`` (``request``'s answer) was served after ``wait_s`` seconds."""
        if index < 0:
            self.root_waits[-index - 1] = wait_s
        else:
            self.waits[index] = wait_s

    def job(self, kind: JobKind, startup_s: float, cold: bool) -> int:
        """A job started; returns its index (its position in start order)."""
        self.gpu_s.append(0.0)
        self.startup_s.append(startup_s)
        self.flags.append((SPECULATIVE if kind == "speculative" else 0) | (COLD if cold else 0))
        return len(self.flags) - 1

    def ended(self, index: int, gpu_s: float, cancel_reason: str | None) -> None:
        """Job ``index`` left its slot after ``gpu_s`` GPU-seconds (cancelled: with a reason)."""
        self.gpu_s[index] = gpu_s
        if cancel_reason is not None:
            self.reasons[cancel_reason] += 1

    def used(self, index: int) -> None:
        """A request found job ``index``'s chunk running or ready."""
        self.flags[index] |= USED

    @classmethod
    def of(cls, requests: Sequence[RequestRecord], jobs: Sequence[JobRecord]) -> Tally:
        """The tally of a run's records (the lead as ``metrics`` defines it: the job that
        completed a chunk is the first, in start order, that ended uncancelled at its end)."""
        t = cls()
        for r in requests:
            t.served(t.request(r.step, r.outcome), r.wait_s)
        made: dict[str, float] = {}
        for j in jobs:
            i = t.job(j.initial_kind, j.startup_s, j.cold)
            t.ended(i, j.gpu_s, j.cancel_reason)
            if j.used:
                t.used(i)
            if (
                j.ended_at is not None
                and j.cancel_reason is None
                and j.ended_at >= j.ends_at - 1e-9
            ):
                made.setdefault(j.chunk_id, j.started_at)
        asked = {(r.session_id, r.step): r.requested_at for r in requests}
        for r in requests:
            started = made.get(r.chunk_id)
            if r.step < 0 or started is None:
                continue
            arrival = asked.get((r.session_id, -1), r.requested_at)
            t.lead[
                lead_of(started, r.requested_at, arrival, asked.get((r.session_id, r.step - 2)))
            ] += 1
        return t


@dataclass(frozen=True, slots=True)
class SimResult:
    """Everything one run produced (times in seconds).

    ``idle_gpu_s``: billed GPU-seconds of containers up and idle (``GpuPool.close``), from the
    run's start to ``billed_end_s`` (the last chunk served or job ended) and scale-down tails.
    ``requests`` / ``jobs`` are empty when the engine ran with ``records=False``; ``tally`` is
    the engine's streamed ``Tally`` (None from a bound: ``figures()`` builds it from the
    records). ``peak_sessions``: most sessions open at once (arrived, not yet served their last
    step), 0 when not counted.
    """

    policy: str
    requests: tuple[RequestRecord, ...]
    jobs: tuple[JobRecord, ...]
    viewing_s: float
    end_s: float
    plans: int
    peak_running: int
    peak_speculative: int
    cold_starts: int
    plan_wall_s: float = field(compare=False, default=0.0)
    propose_wall_s: float = field(compare=False, default=0.0)
    idle_gpu_s: float = 0.0
    billed_end_s: float = 0.0
    tally: Tally | None = field(compare=False, default=None)
    peak_sessions: int = 0

    def figures(self) -> Tally:
        """The run's ``Tally``: the engine's, else built from the records (``Tally.of``)."""
        return self.tally if self.tally is not None else Tally.of(self.requests, self.jobs)
