"""What a simulation run records: jobs, requests and the run's result (seconds, GPU-seconds).

``time_free`` (which policies may have their proposals cached) lives in ``policies.registry``
and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.core.types import JobKind, Outcome
from policies.registry import time_free

__all__ = ["JobRecord", "RequestRecord", "SimResult", "SimulationError", "time_free"]


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


@dataclass(frozen=True, slots=True)
class SimResult:
    """Everything one run produced (times in seconds).

    ``idle_gpu_s``: billed GPU-seconds of containers up and idle (``GpuPool.close``), from the
    run's start to ``billed_end_s`` (the last chunk served or job ended) and scale-down tails.
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
