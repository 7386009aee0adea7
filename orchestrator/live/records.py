"""Plain values the live state hands the shells (scheduler, simulator): what to persist and do.

Shaped like vLLM v1's ``SchedulerOutput``: every field says what it holds; the shell carries the
values out (durable writes, GPU calls, futures, events) and never decides anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orchestrator.core.types import JobKind, Outcome, Plan, RunningJob
from orchestrator.live.build import builder

Claim = Literal["none", "insert", "reclaim"]
"""What the shell must persist for a chunk row before it relies on it: nothing (the row exists
in the right state), ``insert`` a pending row with the live state's chunk id, or ``reclaim`` a
failed / cancelled row back to pending."""


class UnknownMemory(LookupError):
    """The memory is not loaded in the live state (the shell loads it, then asks again)."""


class ParentNotReady(ValueError):
    """The requested chunk's parent is unknown in the memory or not ready."""


_running_job = builder(RunningJob)  # one per job start and promotion (``LiveJob.as_core``)


@dataclass(slots=True)
class LiveJob:
    """A generation holding a GPU slot (mutable: an in-flight hit promotes ``kind`` to demand).

    Times in seconds on the caller's clock; GPU time in GPU-seconds.
    """

    job_id: str
    chunk_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    kind: JobKind
    initial_kind: JobKind
    session_id: str | None
    probability: float
    depth: int
    expected_gpu_s: float
    started_at: float
    policy: str | None = None
    arm: str | None = None
    charged_gpu_s: float = 0.0  # still taken from the bucket (refunded on a hit or a cancel)
    core: RunningJob | None = field(default=None, compare=False, repr=False)
    """``as_core()``'s cached answer; whoever changes a field the core reads sets it to None."""

    def as_core(self) -> RunningJob:
        """The core's view of this job (built once until a field it holds changes)."""
        if self.core is not None:
            return self.core
        # Positional (keywords cost a third more, once per job start and promotion); every
        # field passed (``tests/unit/live/test_records.py`` fails if RunningJob gains one).
        core = self.core = _running_job(
            self.job_id, self.chunk_id, self.memory_id, self.parent_id, self.pose, self.kind,
            self.started_at, self.expected_gpu_s, self.probability, self.session_id,
            self.depth, self.charged_gpu_s,
        )  # fmt: skip
        return core


@dataclass(slots=True)
class Producer:
    """The job that made a ready chunk: kind, the speculation (depth, P) if it was one, and the
    GPU-seconds its speculation still holds in the bucket (given back at its first use)."""

    job_id: str | None
    initial_kind: JobKind
    depth: int | None
    probability: float | None
    used: bool
    charged_gpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Resolution:
    """How one chunk request is served (``LiveState.request``).

    Attributes:
        outcome: hit (ready now), inflight (a job is generating it; wait on that job), miss
            (queued as a demand; wait for it).
        chunk_id: the chunk the request is for.
        chunk_index: its depth in the tree (0 = root).
        job_id: the job that made / is making it; None for a miss or a chunk of unknown origin.
        speculated_depth / speculated_probability: depth and P the chunk was speculated at, when
            a speculative job made it (None otherwise).
        claim: chunk row write the shell must make durable before answering (misses only).
        promote: the running job turned from speculative to demand: persist the promotion.
        mark_used: first use of a speculative job's chunk: stamp the job used.
        policy / arm: the requesting session's, for analytics (None without a session).
    """

    outcome: Outcome
    chunk_id: str
    chunk_index: int
    job_id: str | None
    speculated_depth: int | None
    speculated_probability: float | None
    claim: Claim
    promote: bool
    mark_used: bool
    policy: str | None
    arm: str | None


@dataclass(frozen=True, slots=True)
class StartedJob:
    """A job the shell must run now; ``claim`` is the chunk row write it needs first."""

    job: LiveJob
    claim: Claim
    reason: str


@dataclass(frozen=True, slots=True)
class CancelledJob:
    """A running speculative job the shell must stop; its slot is already free in the state."""

    job_id: str
    chunk_id: str
    memory_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Scheduled:
    """``LiveState.schedule``: the jobs to start and to cancel, and the core's raw plan.

    ``stale`` counts plan actions dropped because the state moved on between ``prepare`` and
    ``apply`` (a plan computed off the event loop): a start whose key got a job or a demand
    meanwhile, a cancel of a job that finished or was promoted.
    """

    starts: tuple[StartedJob, ...]
    cancels: tuple[CancelledJob, ...]
    plan: Plan
    stale: int = 0


@dataclass(frozen=True, slots=True)
class Ended:
    """A job's end as the live state applied it.

    Attributes:
        chunk_id / memory_id: the chunk.
        state: what the chunk became: ready, failed, or unchanged (a stale report: the job had
            already been replaced, e.g. cancelled and its key requested again).
        requests: ids of the waiting requests this answers (served when ready, failed otherwise).
        kind: the job's kind at its end (demand if promoted).
    """

    chunk_id: str
    memory_id: str
    state: Literal["ready", "failed", "unchanged"]
    requests: tuple[str, ...]
    kind: JobKind
