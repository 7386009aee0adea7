"""``none``: never speculate. The seed's on-demand baseline (every request is a miss unless another
viewer already generated the chunk), against which every other policy's hit rate and waste are
measured."""

from __future__ import annotations

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal

__all__ = ["NonePolicy"]


class NonePolicy:
    """Proposes nothing and learns nothing. No parameters."""

    name: str = "none"

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """Always ``[]``: no speculative job is ever started for this session."""
        return []

    def observe(self, event: ActionObserved) -> None:
        """Ignored: the baseline has nothing to learn."""

    def __repr__(self) -> str:
        return "NonePolicy()"
