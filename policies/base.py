"""The speculation policy contract, and small helpers every built-in shares.

A policy guesses which action paths a viewer will take next from the chunk they are watching. It
is a plug-in: the operator picks it by name in the config (``policies.registry``), the host (the
scheduler shell or the simulator) owns the object, asks it for proposals and feeds it what the
viewers actually did. Budget, depth limits, de-duplication and the value ranking are the decision
core's (``orchestrator.core.plan``), applied to every policy alike, so a policy cannot overspend
and never sees the budget (DESIGN.md, "Policies" and "The value of a speculative chunk").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

from orchestrator.core.poses import PoseError, normalize_action
from orchestrator.core.types import ActionObserved, PolicyContext, Proposal

__all__ = [
    "Forgetting",
    "NextActionModel",
    "NextActionVector",
    "Policy",
    "SessionAnswers",
    "action_key",
    "forget_memory",
    "forget_session",
    "sort_proposals",
    "unique_actions",
]


@runtime_checkable
class Policy(Protocol):
    """A speculation policy: proposes action paths with probabilities, may learn online.

    Contract of ``propose(ctx)`` (the core and the property tests rely on every point):

    - Paths start at the session's cursor: ``path[0]`` is a child of
      ``ctx.session.cursor_chunk_id``, ``path[i + 1]`` a child of ``path[i]``. Every
      ``Proposal.session_id`` is ``ctx.session.session_id``.
    - ``1 <= len(path) <= ctx.max_depth``; every action is an element of ``ctx.actions`` (spelled
      exactly as there); no path is proposed twice.
    - ``probability`` is the joint probability, in [0, 1], that the session requests the whole
      path, i.e. the product of the step probabilities along it.
    - Prefix closure: whenever a path of length d > 1 is proposed, its prefixes are proposed too,
      so the core can value each level (a grandchild cannot start before its parent is ready).
      Hence a prefix's probability is >= that of each of its extensions.
    - The depth-1 probabilities sum to <= 1 (they are disjoint events: the viewer picks one child).
      Less than 1 is normal: the policy need not propose every action.
    - Deterministic: the same ``ctx`` after the same sequence of ``observe`` calls yields the same
      list in the same order. No I/O, no clock (use ``ctx.now``), randomness only from
      ``random.Random(ctx.seed ...)``.
    - An empty list is a valid answer ("speculation cannot help here").
    - It never mutates ``ctx`` and never learns inside ``propose`` (only ``observe`` changes state).

    Contract of ``observe(event)``: the host calls it once per action a viewer actually requested,
    in the order the requests happened, with the session's history *before* the action. A policy
    may learn from it (online) or ignore it. It must not raise on actions it does not know.

    Attributes:
        name: the policy's registry name, e.g. ``"markov"``; recorded with every speculative job so
            analysts can group hit rates by policy.
    """

    name: str

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """Proposals for the session in ``ctx``, honouring the contract above."""
        ...

    def observe(self, event: ActionObserved) -> None:
        """Learn that ``event.session_id`` requested ``event.action`` after ``event.history``."""
        ...


@runtime_checkable
class NextActionModel(Protocol):
    """Optional extra a predictor may offer: the full next-action distribution after any history.

    ``policies.lookahead`` uses it to expand hypothetical paths; a base policy without it is asked
    for its depth-1 proposals instead (which may cover only its top few actions).
    """

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        """P(next action = a | the session's history were ``history``) for each a in ctx.actions.

        Keys are exactly the distinct elements of ``ctx.actions``; values are in [0, 1] and sum to
        <= 1 (to 1 for a proper model, up to rounding). ``history`` is oldest first and may extend
        ``ctx.session.history`` with hypothetical actions.
        """
        ...


@runtime_checkable
class NextActionVector(Protocol):
    """Optional extra of a ``NextActionModel``: the same distribution as two aligned tuples.

    ``policies.lookahead`` prefers it: a beam level ranks its children by position instead of
    building, copying and respelling a dict per hypothetical history. A class offering both
    must give the same values from both (a subclass overriding one overrides the other).
    """

    def next_action_vector(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """``(actions, probabilities)``: ``actions`` is ``unique_actions(ctx.actions)`` (the
        distinct elements of ``ctx.actions``, first spelling, in their order), ``probabilities``
        the ``next_action_probabilities`` value of each, every one in [0, 1]."""
        ...


@runtime_checkable
class Forgetting(Protocol):
    """Optional extra: a policy that keeps per-session or per-memory state drops it when the host
    says that session or memory is gone (``orchestrator.live.LiveState`` calls these on session
    eviction and on cold-memory eviction), so its state is bounded by the live sessions, not by
    every session ever seen. Forgetting one session's or memory's state must not change any
    other live session's proposals. Neither method raises on an unknown id.
    """

    def forget_session(self, session_id: str) -> None:
        """Session ``session_id`` was evicted: drop what is kept for it alone."""
        ...

    def forget_memory(self, memory_id: str) -> None:
        """Memory ``memory_id`` went cold (no live session, no job): drop what is kept for it."""
        ...


def forget_session(policy: object, session_id: str) -> None:
    """``policy.forget_session(session_id)`` when the policy offers it (``Forgetting``)."""
    hook = getattr(policy, "forget_session", None)
    if hook is not None:
        hook(session_id)


def forget_memory(policy: object, memory_id: str) -> None:
    """``policy.forget_memory(memory_id)`` when the policy offers it (``Forgetting``)."""
    hook = getattr(policy, "forget_memory", None)
    if hook is not None:
        hook(memory_id)


@functools.lru_cache(maxsize=4096)  # on every propose() call: normalising is the hot path
def action_key(name: str) -> str:
    """The canonical spelling of an action (``"Right+W"`` -> ``"w+right"``), else ``name`` as is.

    Learned statistics are keyed by it, so a config that spells ``ctx.actions`` differently from
    the events still matches. A name ``normalize_action`` rejects (an operator's own action set)
    is kept verbatim rather than dropped: policies must not raise on actions they do not know.
    """
    try:
        return normalize_action(name)
    except PoseError:
        return name


def unique_actions(actions: Iterable[str]) -> tuple[str, ...]:
    """``actions`` without repeats (compared by ``action_key``), first spelling kept, order kept.

    The order of ``ctx.actions`` is the tie-break of every built-in, which keeps proposals
    deterministic when probabilities tie (e.g. a fresh model's uniform prior).
    """
    seen: dict[str, str] = {}
    for action in actions:
        seen.setdefault(action_key(action), action)
    return tuple(seen.values())


def sort_proposals(proposals: Iterable[Proposal], order: tuple[str, ...]) -> list[Proposal]:
    """Proposals by depth, then probability (highest first), then path in ``order``'s order.

    A stable, total order: the output does not depend on how a policy happened to build the list.
    Actions missing from ``order`` sort after the known ones (callers only pass known actions).
    """
    rank = {action: i for i, action in enumerate(order)}
    missing = len(order)

    def key(p: Proposal) -> tuple[int, float, tuple[int, ...]]:
        return (len(p.path), -p.probability, tuple(rank.get(a, missing) for a in p.path))

    return sorted(proposals, key=key)


class SessionAnswers:
    """Each session's last proposals, kept until the policy's state changes (``clear``).

    For a policy whose answer reads only the session's memory and history, ``ctx.actions`` and
    ``ctx.max_depth`` (markov; lookahead over a ``NextActionModel``): asked again with those
    unchanged, it repeats its answer instead of recomputing it. The owner calls ``clear`` on
    every ``observe`` and ``forget_memory``, and ``forget`` on ``forget_session``.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[object, ...], list[Proposal]]] = {}

    def get(
        self, ctx: PolicyContext, make: Callable[[PolicyContext], list[Proposal]]
    ) -> list[Proposal]:
        """The kept answer for ``ctx``'s session if what it read is unchanged, else ``make(ctx)``
        (kept); a fresh list either way (callers may change it)."""
        v = ctx.session
        key = (v.memory_id, v.history, ctx.actions, ctx.max_depth)
        kept = self._kept.get(v.session_id)
        if kept is None or kept[0] != key:
            kept = self._kept[v.session_id] = (key, make(ctx))
        return list(kept[1])

    def forget(self, session_id: str) -> None:
        """Drop one session's answer (it was evicted)."""
        self._kept.pop(session_id, None)

    def clear(self) -> None:
        """Drop every answer (the policy learned something)."""
        self._kept.clear()
