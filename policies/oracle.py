"""``oracle``: knows each viewer's own future. Simulation only: the best *per-cursor* policy.

Given each session's complete action sequence (from the trace the simulator replays, DESIGN.md
"Traces"), it proposes exactly the path the viewer will take, with probability 1, from that
viewer's cursor, within ``max_depth`` and the budget like any policy. The future comes up front
(``future``) or as each session arrives (``foresee``: the simulator passes the session's own
trace line, so a streamed replay never holds the whole trace for the oracle; it knows the same,
since nothing asks it about a session before the session arrives). It is not the physical
limit: on a shared memory a chunk another viewer will need can start long before that viewer
arrives, and a per-cursor policy never proposes it (in the crowd regime a schedule knowing every
viewer's future cuts the mean wait 10x as much as this policy does, or more). The honest bounds are
``orchestrator.sim.bound`` (``clairvoyant`` and ``serial-chain``); the simulator reports shares
of the better of ``clairvoyant`` and this policy. A live service has no future to give it, hence
``make_policy("oracle")`` without ``future`` fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from policies.base import action_key, unique_actions

__all__ = ["OraclePolicy"]

SIMULATION_ONLY = (
    "the 'oracle' policy is simulation-only: it needs each session's future actions, "
    "future={session_id: [action, ...]} from a trace (the simulator passes it); "
    "a live service cannot use it"
)


class OraclePolicy:
    """Propose the session's true next actions, every prefix with probability 1.0.

    At a session whose history has length ``i`` it proposes ``future[i : i + d]`` and its
    prefixes, with ``d = min(ctx.max_depth, depth)``. It trusts the history's length, not its
    content: the simulator keeps the two in step. The path stops before the first action that
    ``ctx.actions`` does not offer (the core could not generate it). A session absent from
    ``future``, or past its end, gets no proposals.

    Args:
        future: session_id -> that session's actions in order, from its first step (the trace's
            ``steps[*].action``). Required (``{}`` when the host calls ``foresee`` for each
            session as it arrives); copied.
        depth: optional extra cap on the path length in chunks (default None: ``ctx.max_depth``).

    Raises:
        ValueError: ``future`` missing (simulation-only) or not a mapping of str to action lists;
            ``depth`` not a positive int.
    """

    name: str = "oracle"

    def __init__(
        self,
        future: Mapping[str, Sequence[str]] | None = None,
        depth: int | None = None,
    ) -> None:
        if future is None:
            raise ValueError(SIMULATION_ONLY)
        if not isinstance(future, Mapping):
            raise ValueError(f"future must map session_id -> list of actions (got {future!r})")
        self.future: dict[str, tuple[str, ...]] = {}
        for sid, steps in future.items():
            self.foresee(sid, steps)
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            raise ValueError(f"depth must be a positive integer or None (got {depth!r})")
        self.depth = depth
        self._spelling: tuple[tuple[str, ...], dict[str, str]] | None = None

    def foresee(self, session_id: str, actions: Sequence[str]) -> None:
        """Session ``session_id`` will take ``actions`` (in order, from its first step); the
        simulator calls this as the session arrives (``orchestrator.sim.engine.Simulation``).

        Raises:
            ValueError: ``session_id`` not a string or ``actions`` not a sequence of strings.
        """
        if (
            not isinstance(session_id, str)
            or isinstance(actions, str)
            or not isinstance(actions, Sequence)
            or not all(isinstance(a, str) for a in actions)
        ):
            raise ValueError(
                f"future must map session_id -> list of action names; bad entry {session_id!r}"
            )
        self.future[session_id] = tuple(actions)

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The true next path from the cursor and all its prefixes, each with P = 1.0."""
        steps = self.future.get(ctx.session.session_id)
        if steps is None:
            return []
        d = ctx.max_depth if self.depth is None else min(ctx.max_depth, self.depth)
        i = len(ctx.session.history)
        memo = self._spelling
        if memo is None or (memo[0] is not ctx.actions and memo[0] != ctx.actions):
            # Kept for the last ctx.actions seen (hosts pass one tuple on every call).
            memo = self._spelling = (
                ctx.actions, {action_key(a): a for a in unique_actions(ctx.actions)}
            )  # fmt: skip
        spelling = memo[1]
        path: list[str] = []
        for action in steps[i : i + max(d, 0)]:
            offered = spelling.get(action_key(action))
            if offered is None:
                break
            path.append(offered)
        sid = ctx.session.session_id
        return [Proposal(sid, tuple(path[:n]), 1.0) for n in range(1, len(path) + 1)]

    def observe(self, event: ActionObserved) -> None:
        """Ignored: the oracle already knows everything."""

    def forget_session(self, session_id: str) -> None:
        """The session was evicted: its future is no longer needed (``policies.base.Forgetting``;
        a host evicts a session once it ended, so the table shrinks as the replay goes)."""
        self.future.pop(session_id, None)

    def forget_memory(self, memory_id: str) -> None:
        """Nothing is kept per memory."""

    def __repr__(self) -> str:
        return f"OraclePolicy(sessions={len(self.future)}, depth={self.depth})"
