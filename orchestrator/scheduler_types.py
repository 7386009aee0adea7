"""The scheduler's plain values: its configuration and a request's answer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orchestrator.core.types import Budget, Outcome
from orchestrator.experiments import Arm


@dataclass(frozen=True, slots=True)
class ServedChunk:
    """A request's answer: the ready chunk, the outcome, the wait (ms) and the job used."""

    chunk_id: uuid.UUID
    memory_id: uuid.UUID
    parent_chunk_id: uuid.UUID | None
    pose: str
    action: str | None
    chunk_index: int
    outcome: Outcome
    wait_ms: float
    job_id: uuid.UUID | None
    request_id: uuid.UUID | None = None  # its chunk_requests row


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The scheduler's knobs: budget, regime estimates, policy and its parameters."""

    budget: Budget
    arms: tuple[Arm, ...]
    experiment: str
    think_s: float
    expected_gpu_s: float | None
    cold_start_s: float
    usd_per_gpu_s: float = 0.0
    seed: int = 0
    evict_after_s: float = 3600.0
