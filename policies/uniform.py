"""``uniform``: the seed's "pre-generate 2-4 branches" (seed architecture, "Experience Duration":
"While user watches chunk N, generate 2-4 possible next directions in parallel").

It always proposes the same ``k`` children of the cursor, taken from a fixed preference list,
each with probability ``1 / k``. It ignores history, other viewers and everything it observes: it
is the history-free baseline a learned policy has to beat.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.core.build import new_proposal
from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from policies.base import action_key, unique_actions

__all__ = ["DEFAULT_PREFERENCE", "UniformPolicy"]

DEFAULT_PREFERENCE: tuple[str, ...] = ("w", "left", "right", "a", "d", "s", "up", "down")
"""Default preference order, most likely first. Judgement, not measurement: walking forward is the
default motion (the root chunk is ``w-31``), then looking around (yaw), then strafing; backing up
and pitching come last. The 16 combinations are left out: the seed's 2-4 branches are single
keys."""


class UniformPolicy:
    """Speculate the first ``k`` preferred actions one level deep, each with P = 1 / k.

    Args:
        k: branches per cursor (count, default 3: the middle of the seed's "2-4"). P = 1 / k for
            each, so the depth-1 probabilities sum to exactly 1 when all k are offered.
        actions: preference order (action names, default ``DEFAULT_PREFERENCE``). The first ``k``
            of them that are in ``ctx.actions`` are proposed; if fewer than ``k`` are offered,
            fewer are proposed, still at 1 / k each (the policy's belief does not change because
            the frontend offers less).

    Raises:
        ValueError: ``k`` is not a positive int, or ``actions`` is empty or not a list of strings.
    """

    name: str = "uniform"

    def __init__(self, k: int = 3, actions: Sequence[str] = DEFAULT_PREFERENCE) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        if isinstance(actions, str) or not all(isinstance(a, str) for a in actions):
            raise ValueError(f"actions must be a list of action names (got {actions!r})")
        if not actions:
            raise ValueError("actions must name at least one action")
        self.k = k
        self.actions = unique_actions(actions)
        # The last ctx.actions seen and the actions proposed for it (hosts pass one tuple).
        self._chosen: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The first ``k`` preferred actions offered in ``ctx.actions``, depth 1, P = 1 / k each.

        Proposed with the spelling of ``ctx.actions``; empty when ``ctx.max_depth < 1``.
        """
        if ctx.max_depth < 1:
            return []
        memo = self._chosen
        if memo is None or (memo[0] is not ctx.actions and memo[0] != ctx.actions):
            offered = {action_key(a): a for a in unique_actions(ctx.actions)}
            chosen = [offered[key] for a in self.actions if (key := action_key(a)) in offered]
            memo = self._chosen = (ctx.actions, tuple(chosen[: self.k]))
        p = 1.0 / self.k
        sid = ctx.session.session_id
        return [new_proposal(sid, (a,), p) for a in memo[1]]

    def observe(self, event: ActionObserved) -> None:
        """Ignored: the uniform baseline does not learn."""

    def __repr__(self) -> str:
        return f"UniformPolicy(k={self.k}, actions={list(self.actions)!r})"
