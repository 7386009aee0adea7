"""``markov``: an online n-gram model over actions, backing off session -> memory -> global.

Viewers repeat themselves (someone walking forward tends to keep walking forward) and viewers of
the same photo tend to head for the same things in it. The model counts, for every context (the
last few actions), which action came next, at three scopes: this session, every session on this
memory, every session anywhere. It learns only from ``observe`` events.

The formula, exactly (so an analyst can recompute any probability by hand)
--------------------------------------------------------------------------

Notation:

- ``A``: the distinct actions of ``ctx.actions`` (``|A|`` of them; 24 by default).
- ``h``: the history the prediction is for: ``ctx.session.history``, extended by the path so far
  when chaining deeper. ``c_n`` = the last ``n`` actions of ``h`` (``c_0`` = the empty context).
- ``N_x(c, a)``: how many observed events at scope ``x`` had an action history ending in ``c``
  and then action ``a``. Scope ``s`` = this session id, ``m`` = this memory id, ``g`` = all events
  (so every event counts once in each of its three scopes, and ``N_s <= N_m <= N_g``).
  ``N_x(c) = sum over a in A of N_x(c, a)``: actions outside ``A`` are ignored.
- Parameters ``order``, ``alpha``, ``min_count``, ``beta`` (see ``MarkovPolicy``).

1. Context (back-off over length):
   ``n* = max { n : 1 <= n <= min(order, len(h)), N_g(c_n) >= min_count }``, or 0 when no n
   qualifies. ``c = c_{n*}``. All three scopes are read at this one context.
2. Global, add-alpha (Laplace) prior over ``A``:
   ``P_g(a) = (N_g(c, a) + alpha) / (N_g(c) + alpha * |A|)``
3. Memory, with the global estimate as a prior worth ``beta`` observations:
   ``P_m(a) = (N_m(c, a) + beta * P_g(a)) / (N_m(c) + beta)``
4. Session, with the memory estimate as its prior:
   ``P_s(a) = (N_s(c, a) + beta * P_m(a)) / (N_s(c) + beta)``
5. ``P(a | h) = P_s(a)``. Each level sums to 1 over ``A``. Equivalently each level is a mix of its
   own frequencies and the level above, weighted by evidence: ``P_s = l * N_s(c, a) / N_s(c) +
   (1 - l) * P_m`` with ``l = N_s(c) / (N_s(c) + beta)``. A new session on a known memory thus
   starts at the memory's statistics (``N_s = 0`` -> ``P_s = P_m``), a new memory at the global
   ones, and a new service at the uniform ``1 / |A|``.

A path's probability is the product of its steps, each predicted on the history extended by the
steps before it (the counts do not change): ``P(a1, a2 | h) = P(a1 | h) * P(a2 | h + (a1,))``.

Worked example (order 2, alpha 1, min_count 2, beta 4, ``|A|`` = 24): one session observed
``w, w, w, right``. Its history is ``(w, w, w, right)``; ``c_2 = (w, right)`` and ``c_1 = (right,)``
were never seen, ``c_0`` was seen 4 times (w: 3, right: 1), so ``n* = 0`` and
``P_g(w) = 4/28 = 1/7``, ``P_m(w) = (3 + 4/7) / 8 = 25/56``, ``P_s(w) = (3 + 100/56) / 8 =
67/112 ~ 0.598``. Another session on the same memory with the same history gets ``P_m(w) = 25/56``.

``ctx.memory_history`` is deliberately not used: the same actions arrive as ``observe`` events,
and reading both would count them twice. Action names are compared after
``orchestrator.core.poses.normalize_action`` (``"right+w"`` is ``"w+right"``).

State grows with the number of distinct (scope, context, action) triples seen: at most
``(order + 1)`` counter increments per scope per observed action.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from policies.base import action_key, sort_proposals, unique_actions

__all__ = ["MarkovPolicy"]

_Counts = dict[tuple[str, ...], dict[str, int]]
"""context (normalised actions, oldest first) -> normalised next action -> count."""


def _positive_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")
    return value


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0 (got {value!r})")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite (got {value!r})")
    return float(value)


class MarkovPolicy:
    """Online n-gram predictor with session -> memory -> global back-off (formula: module doc).

    Args:
        order: longest context, in actions (default 2: the last two choices, ~10 s of viewing;
            with 24 actions there are 576 two-action contexts, which a few hundred steps of
            traffic start to fill, whereas 13,824 three-action contexts would stay sparse).
        alpha: Laplace pseudo-count added to every action of ``ctx.actions`` at the global level
            (default 1.0: Laplace's rule of succession). Larger = flatter predictions. Must be > 0.
        min_count: global observations a context needs before it is used rather than backing off
            to a shorter one (default 2: one occurrence is an anecdote, two show a repetition).
        beta: prior strength, in observations, of the more general scope when estimating the more
            specific one (default 4.0, a judgement call: a session's own habit outweighs its
            memory's once it has more than 4 observations in that context). Must be > 0.
        top_k: actions proposed per level (default 4: the top of the seed's "2-4 branches"; the
            core drops those below its ``min_probability`` anyway).
        depth: levels proposed (default 1); deeper paths chain the model on the hypothetical
            history, ``top_k`` children per proposed path (``top_k ** d`` paths at level d), capped
            by ``ctx.max_depth``. ``policies.lookahead`` is the better tool for deep expansion.

    Raises:
        ValueError: a parameter out of range (the message names it).
    """

    name: str = "markov"

    def __init__(
        self,
        order: int = 2,
        alpha: float = 1.0,
        min_count: int = 2,
        beta: float = 4.0,
        top_k: int = 4,
        depth: int = 1,
    ) -> None:
        self.order = _positive_int("order", order, 0)
        self.alpha = _positive_float("alpha", alpha)
        self.min_count = _positive_int("min_count", min_count, 1)
        self.beta = _positive_float("beta", beta)
        self.top_k = _positive_int("top_k", top_k, 1)
        self.depth = _positive_int("depth", depth, 1)
        self._global: _Counts = defaultdict(dict)
        self._memory: dict[str, _Counts] = defaultdict(lambda: defaultdict(dict))
        self._session: dict[str, _Counts] = defaultdict(lambda: defaultdict(dict))
        self.observed = 0  # events observed so far: lets a host or analyst see it is being fed

    # -- learning ---------------------------------------------------------------------------

    def observe(self, event: ActionObserved) -> None:
        """Count ``event.action`` after every context length 0..order of ``event.history``."""
        history = tuple(action_key(a) for a in event.history)
        action = action_key(event.action)
        scopes = (self._global, self._memory[event.memory_id], self._session[event.session_id])
        for n in range(min(self.order, len(history)) + 1):
            context = history[len(history) - n :]
            for counts in scopes:
                row = counts[context]
                row[action] = row.get(action, 0) + 1
        self.observed += 1

    def counts(
        self,
        context: Iterable[str],
        *,
        memory_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, int]:
        """Observed next-action counts after ``context`` (oldest first), for an analyst or a test.

        Global scope by default; ``memory_id`` or ``session_id`` (not both) narrows it. Keys are
        normalised action names; unseen contexts give ``{}``.
        """
        if memory_id is not None and session_id is not None:
            raise ValueError("give memory_id or session_id, not both")
        key = tuple(action_key(a) for a in context)
        if session_id is not None:
            table = self._session.get(session_id, {})
        elif memory_id is not None:
            table = self._memory.get(memory_id, {})
        else:
            table = self._global
        return dict(table.get(key, {}))

    # -- prediction -------------------------------------------------------------------------

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        """``P(a | history)`` for every distinct action of ``ctx.actions`` (module doc, steps 1-5).

        Scopes are ``ctx.session.session_id`` and ``ctx.session.memory_id``. Keys are spelled as
        in ``ctx.actions``; values sum to 1 (up to rounding), or the dict is empty if no actions.
        """
        actions = unique_actions(ctx.actions)
        if not actions:
            return {}
        keys = [action_key(a) for a in actions]
        h = tuple(action_key(a) for a in history)
        empty: dict[tuple[str, ...], dict[str, int]] = {}
        memory = self._memory.get(ctx.session.memory_id, empty)
        session = self._session.get(ctx.session.session_id, empty)

        def row(table: dict[tuple[str, ...], dict[str, int]], c: tuple[str, ...]) -> list[int]:
            found = table.get(c, {})
            return [found.get(k, 0) for k in keys]

        # Step 1: the longest context with enough global evidence (restricted to A).
        context: tuple[str, ...] = ()
        for n in range(min(self.order, len(h)), 0, -1):
            candidate = h[len(h) - n :]
            if sum(row(self._global, candidate)) >= self.min_count:
                context = candidate
                break

        # Steps 2-4: Laplace at the global level, then each narrower scope on top of the wider.
        n_g = row(self._global, context)
        denom = sum(n_g) + self.alpha * len(keys)
        probs = [(n + self.alpha) / denom for n in n_g]
        for counts in (row(memory, context), row(session, context)):
            total = sum(counts) + self.beta
            probs = [(n + self.beta * p) / total for n, p in zip(counts, probs, strict=True)]
        return {a: min(1.0, max(0.0, p)) for a, p in zip(actions, probs, strict=True)}

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The ``top_k`` most probable next actions, and ``top_k`` children of each proposed path
        per further level up to ``min(depth, ctx.max_depth)``; P = product of step probabilities.

        Ties are broken by the order of ``ctx.actions``. Prefixes of every path are included.
        """
        levels = min(self.depth, ctx.max_depth)
        order = unique_actions(ctx.actions)
        rank = {a: i for i, a in enumerate(order)}
        sid = ctx.session.session_id
        out: list[Proposal] = []
        frontier: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
        for _ in range(levels):
            nxt: list[tuple[tuple[str, ...], float]] = []
            for path, p_path in frontier:
                dist = self.next_action_probabilities(ctx, ctx.session.history + path)
                best = sorted(dist.items(), key=lambda item: (-item[1], rank[item[0]]))
                for action, p in best[: self.top_k]:
                    nxt.append(((*path, action), p_path * p))
            out.extend(Proposal(sid, path, p) for path, p in nxt)
            frontier = nxt
        return sort_proposals(out, order)

    def __repr__(self) -> str:
        return (
            f"MarkovPolicy(order={self.order}, alpha={self.alpha}, min_count={self.min_count}, "
            f"beta={self.beta}, top_k={self.top_k}, depth={self.depth})"
        )
