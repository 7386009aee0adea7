"""The live state: one synchronous state machine driven by the scheduler shell and the simulator.

``LiveState`` (``state``) over ``KnownTree`` (``tree``), ``ProposalCache`` (``proposals``) and the
plain values of ``records``. No asyncio, no database, no clock (DESIGN.md layers: API ->
scheduler shell -> live state -> core <- policies; simulator -> live state).
"""

from orchestrator.live.changes import LiveSession
from orchestrator.live.proposals import ProposalCache, Proposer, SinglePolicy
from orchestrator.live.records import (
    CancelledJob,
    Claim,
    Ended,
    LiveJob,
    ParentNotReady,
    Producer,
    Resolution,
    Scheduled,
    StartedJob,
    UnknownMemory,
)
from orchestrator.live.state import LiveState
from orchestrator.live.tree import KnownNode, KnownTree

__all__ = [
    "CancelledJob",
    "Claim",
    "Ended",
    "KnownNode",
    "KnownTree",
    "LiveJob",
    "LiveSession",
    "LiveState",
    "ParentNotReady",
    "Producer",
    "ProposalCache",
    "Proposer",
    "Resolution",
    "Scheduled",
    "SinglePolicy",
    "StartedJob",
    "UnknownMemory",
]
