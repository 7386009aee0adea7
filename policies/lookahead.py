"""``lookahead``: expand a base predictor's most probable paths several levels deep (beam search).

When generation is slow relative to viewing (the seed's A100 regime: G ~ 150 s per chunk against
W ~ 7-30 s per step), a child started when its parent is requested is still minutes away; only a
chunk started several steps ahead can be ready in time. This policy proposes those deeper paths,
each with its joint probability, and every prefix of them; the core's value ranking (benefit per
GPU-second, DESIGN.md "The value of a speculative chunk") decides which levels are worth a GPU.

Beam search, exactly: level 1 scores every action by the base's next-action probability and keeps
the ``beam`` most probable; level d + 1 extends each kept level-d path by every action, scores
``P(path + (a,)) = P(path) * P(a | history + path)``, and keeps the ``beam`` most probable of all
those extensions. Levels run to ``min(depth, ctx.max_depth)``. The answer is every kept path of
every level (at most ``beam * depth`` proposals); a kept path's prefixes were kept at the levels
before, so the set is prefix-closed. Ties break by the order of ``ctx.actions``; zero-probability
paths are dropped, and a step probability above 1 (a faulty base) counts as 1. The base is not
asked about a kept path that cannot place a child in the next level (``beam`` extensions already
found are strictly more probable than the path itself): the answer is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from orchestrator.core.build import new_proposal
from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from policies.base import (
    NextActionModel,
    NextActionVector,
    Policy,
    SessionAnswers,
    action_key,
    forget_memory,
    forget_session,
    unique_actions,
)

__all__ = ["LookaheadPolicy"]


class LookaheadPolicy:
    """Beam search over a base predictor's next-action probabilities (algorithm: module doc).

    Args:
        base: the predictor to expand: a registry spec (default ``"markov"``; any built-in name or
            ``"package.module:attr"``) or a policy object. A base offering
            ``next_action_probabilities`` (``policies.base.NextActionModel``, as ``markov`` does)
            is asked for the full distribution after each hypothetical history; any other policy
            is asked for its depth-1 proposals with the history extended, the cursor's known
            children given only at level 1 (deeper cursors do not exist yet).
        depth: deepest level proposed, in chunks below the cursor (default 3; the core caps it at
            ``ctx.max_depth`` as well). With typical step probabilities of 0.3-0.6, a level-3 path
            has P ~ 0.03-0.2, around the core's default ``min_probability`` of 0.05: deeper levels
            rarely pass it.
        beam: paths kept per level (default 6: a little more than markov's 4 per level, so two
            branches can each keep their likely continuations).
        base_params: parameters for the base when ``base`` is a spec (default none: its defaults).

    Raises:
        ValueError: ``depth`` or ``beam`` is not a positive int, ``base_params`` given with a policy
            object, or the base spec cannot be built (``policies.registry.make_policy``'s errors).
    """

    name: str = "lookahead"

    def __init__(
        self,
        base: str | Policy = "markov",
        depth: int = 3,
        beam: int = 6,
        base_params: Mapping[str, object] | None = None,
    ) -> None:
        for label, value in (("depth", depth), ("beam", beam)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer (got {value!r})")
        if isinstance(base, str):
            # Imported here: the registry imports this module to list it as a built-in.
            from policies.registry import make_policy

            self.base: Policy = make_policy(base, base_params)
        elif base_params is not None:
            raise ValueError("base_params only apply when base is a policy name or module:attr")
        else:
            self.base = base
        self.depth = depth
        self.beam = beam
        self._checked: object = None  # the base ``_model`` was checked for
        self._model: NextActionModel | None = None
        # Valid until the next observe (the only call that changes the base's state); used
        # with a NextActionModel base only.
        self._answers = SessionAnswers()
        self._offer: (
            tuple[tuple[str, ...], dict[str, int], dict[str, str], tuple[str, ...]] | None
        ) = None
        self._vector: NextActionVector | None = None  # the base, if it offers vectors
        self._aligned: tuple[str, ...] | None = None  # a base vector's actions that align

    def _check_base(self) -> None:
        """What the base offers (a runtime Protocol check costs ~10 us: once per base, not on
        every beam step; ``base`` is a public attribute, so a replaced one is checked anew)."""
        self._checked = self.base
        self._model = self.base if isinstance(self.base, NextActionModel) else None
        self._vector = self.base if isinstance(self.base, NextActionVector) else None
        self._aligned = None

    def _next(
        self,
        ctx: PolicyContext,
        path: tuple[str, ...],
        spelling: dict[str, str],
        offered: dict[str, int],
    ) -> dict[str, float]:
        """P(next action | the session's history followed by ``path``), keyed as ``ctx.actions``
        (``spelling``: normalised action -> its spelling there; ``offered``: keyed by those
        spellings)."""
        history = ctx.session.history + path
        raw: dict[str, float] | list[tuple[str, float]]
        if self._checked is not self.base:
            self._check_base()
        if self._model is not None:
            raw = self._model.next_action_probabilities(ctx, history)
            if raw.keys() <= offered.keys():
                return raw  # already spelled as in ctx.actions (markov's always is)
            raw = list(raw.items())
        else:
            sub = replace(
                ctx,
                session=replace(ctx.session, history=history),
                children=ctx.children if not path else {},
                max_depth=1,
            )
            raw = [(p.path[0], p.probability) for p in self.base.propose(sub) if len(p.path) == 1]
        # Respell as in ctx.actions and drop what is not offered: a custom base may not.
        dist: dict[str, float] = {}
        for action, p in raw:
            if (key := action_key(action)) in spelling:
                dist.setdefault(spelling[key], p)
        return dist

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The kept paths of every beam level with their joint probabilities (module doc).

        With a ``NextActionModel`` base the answer reads only the session, memory and history,
        ``ctx.actions`` and ``ctx.max_depth`` (not the cursor's children nor the time), so it is
        kept per session until the next ``observe`` and repeated when those are unchanged (a
        host asks again when only the cursor's children changed). The base must be fed through
        this policy's ``observe`` (as every host does)."""
        if self._checked is not self.base:
            self._check_base()
        if self._model is None:
            return self._propose(ctx)
        return self._answers.get(ctx, self._propose)

    def _offered(
        self, offered: tuple[str, ...]
    ) -> tuple[dict[str, int], dict[str, str], tuple[str, ...]]:
        """``ctx.actions`` without repeats (``unique_actions``) -> rank, normalised action -> its
        spelling there, and the distinct actions themselves; kept for the last ``ctx.actions``
        seen (hosts pass one tuple)."""
        memo = self._offer
        if memo is None or (memo[0] is not offered and memo[0] != offered):
            actions = unique_actions(offered)
            rank = {a: i for i, a in enumerate(actions)}
            memo = self._offer = (offered, rank, {action_key(a): a for a in actions}, actions)
            self._aligned = None
        return memo[1], memo[2], memo[3]

    def _propose(self, ctx: PolicyContext) -> list[Proposal]:
        rank, spelling, actions = self._offered(ctx.actions)
        sid, beam, history = ctx.session.session_id, self.beam, ctx.session.history
        vector = self._vector
        out: list[Proposal] = []
        # (-joint, ranks of the path, path): the module doc's order, best first.
        kept: list[tuple[float, tuple[int, ...], tuple[str, ...]]] = [(-1.0, (), ())]
        for _ in range(min(self.depth, ctx.max_depth)):
            # Only a parent's own ``beam`` best children can be among the ``beam`` best of the
            # level (its other children each have ``beam`` siblings before them), so each
            # parent's are chosen first and only those are ranked together; ``best`` holds the
            # level's ``beam`` best so far. A step's probability is at most 1, so no child of a
            # parent is more probable than the parent: once the ``beam``-th best so far is
            # strictly more probable than the next parent, neither that parent nor any after it
            # (they are in order) can place a child, and the base is not asked about them.
            best: list[tuple[float, tuple[int, ...], tuple[str, ...]]] = []
            for neg_path, ranks, path in kept:
                if len(best) == beam and best[-1][0] < neg_path:
                    break
                children: list[tuple[float, int, str]]
                if vector is not None and (
                    (found := vector.next_action_vector(ctx, history + path))[0] is self._aligned
                    or self._aligns(found[0], actions)
                ):
                    # Positions are ranks (the base's actions are ctx.actions' distinct ones,
                    # in order) and every p is in [0, 1]: the joint of each action, then the
                    # positions in (joint, rank) order; a stable sort keeps equal joints in
                    # rank order, as sorting (joint, rank) tuples does.
                    probs = found[1]
                    joint = [neg_path * p for p in probs]
                    order = sorted(range(len(joint)), key=joint.__getitem__)
                    # Negative joints first: the ``beam`` best with P > 0 (a zero P, or a
                    # joint that underflowed, is -0.0, not < 0.0, and sorts after them). With
                    # ``best`` full, a child less probable than its last cannot enter it.
                    cut = best[-1][0] if len(best) == beam else None
                    if cut is None:
                        children = [
                            (j, i, actions[i]) for i in order[:beam] if (j := joint[i]) < 0.0
                        ]
                    else:
                        children = [
                            (j, i, actions[i]) for i in order[:beam] if (j := joint[i]) <= cut
                        ]
                else:
                    children = sorted(
                        [(neg_path * (p if p < 1.0 else 1.0), rank[a], a)
                         for a, p in self._next(ctx, path, spelling, rank).items() if p > 0.0]
                    )  # fmt: skip
                    del children[beam:]
                    while children and not children[-1][0] < 0.0:
                        children.pop()  # the joint probability underflowed to 0
                if children:
                    best.extend((neg, (*ranks, r), (*path, a)) for neg, r, a in children)
                    best.sort()
                    del best[beam:]
            kept = best
            if not kept:
                break
            out.extend([new_proposal(sid, path, -neg) for neg, _, path in kept])
        # Already in ``sort_proposals``' order: by level, then (-P, ranks of the path) within.
        return out

    def _aligns(self, found: tuple[str, ...], actions: tuple[str, ...]) -> bool:
        """Whether a base's vector is over exactly ``actions`` (in order); remembered by
        identity until ``ctx.actions`` changes (markov hands back one tuple per action set)."""
        if found == actions:
            self._aligned = found
            return True
        return False

    def observe(self, event: ActionObserved) -> None:
        """Forwarded to the base predictor, which does the learning."""
        self._answers.clear()
        self.base.observe(event)

    def forget_session(self, session_id: str) -> None:
        """Forwarded to the base (``policies.base.Forgetting``)."""
        self._answers.forget(session_id)
        forget_session(self.base, session_id)

    def forget_memory(self, memory_id: str) -> None:
        """Forwarded to the base (``policies.base.Forgetting``)."""
        self._answers.clear()
        forget_memory(self.base, memory_id)

    def __repr__(self) -> str:
        return f"LookaheadPolicy(base={self.base!r}, depth={self.depth}, beam={self.beam})"
