"""Straightforward implementations of markov's and lookahead's prediction, as they were before
they were optimised (dense lists over every action, one full computation per call, one sort of
every extension per beam level). ``test_reference.py`` holds the optimised policies to them:
the same proposals and the same probabilities, bit for bit."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.core.types import PolicyContext, Proposal
from policies.base import NextActionModel, action_key, sort_proposals, unique_actions
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from policies.smoothing import (
    BIN_PRIOR,
    DEFAULT_KEYS,
    base_prior,
    bin_index,
    contexts,
    ney_discount,
)

_Counts = dict[tuple[str, ...], dict[str, int]]


def dense_shrink(
    counts: list[int], prior: list[float], strength: float, discount: float
) -> list[float]:
    """The module doc's step 2 over dense count lists."""
    total = sum(counts)
    if total <= 0:
        return prior
    seen = sum(1 for n in counts if n > 0)
    back = discount * seen + strength
    denom = total + strength
    return [
        ((n - discount if n > discount else 0.0) + back * q) / denom
        for n, q in zip(counts, prior, strict=True)
    ]


class ReferenceMarkov(MarkovPolicy):
    """MarkovPolicy with the dense, unmemoised prediction and the propose of one sort per
    path and a final ``sort_proposals`` (its learning is the same code)."""

    def _learn_calibration(
        self, history: tuple[str, ...], action: str, memory: str, session: str
    ) -> None:
        keys = sorted(self._seen | {action} | set(DEFAULT_KEYS))
        raw = self._dense_raw(keys, history, memory, session)
        for k, p in zip(keys, raw, strict=True):
            b = bin_index(p)
            self._bins[b][0] += p
            self._bins[b][1] += 1.0 if k == action else 0.0

    def _dense_raw(
        self, keys: list[str], h: tuple[str, ...], memory_id: str, session_id: str
    ) -> list[float]:
        empty: _Counts = {}
        if self._cold:  # a forgotten memory's counts come back when it is read (as markov's)
            self._warm(memory_id)
        memory = self._memory.get(memory_id, empty)
        session = self._session.get(session_id, empty)

        def row(table: _Counts, c: tuple[str, ...]) -> list[int]:
            found = table.get(c)
            return [found.get(k, 0) for k in keys] if found else [0] * len(keys)

        g = base_prior(tuple(keys))
        m = s = g
        d = ney_discount(self._n1, self._n2)
        levels = [(c, r) for c in contexts(h, self.order)
                  if sum(r := row(self._global, c)) >= self.min_count]  # fmt: skip
        for n, (c, n_all) in enumerate(levels or [((), row(self._global, ()))]):
            n_mem, n_ses = row(memory, c), row(session, c)
            other_mem = [a - b for a, b in zip(n_all, n_mem, strict=True)]
            other_ses = [a - b for a, b in zip(n_mem, n_ses, strict=True)]
            if n:
                g = dense_shrink(other_mem, s, self.kappa, d)
            else:
                g = dense_shrink(other_mem, s, self.alpha, 0.0)
            m = dense_shrink(other_ses, g, self.beta, d)
            s = dense_shrink(n_ses, m, self.beta, d)
        return s

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        actions = unique_actions(ctx.actions)
        if not actions:
            return {}
        keys = [action_key(a) for a in actions]
        h = tuple(action_key(a) for a in history)
        raw = self._dense_raw(keys, h, ctx.session.memory_id, ctx.session.session_id)
        probs = self._dense_recalibrate(raw) if self.calibrate else raw
        return {a: min(1.0, max(0.0, p)) for a, p in zip(actions, probs, strict=True)}

    def next_action_vector(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        dist = self.next_action_probabilities(ctx, history)
        return tuple(dist), tuple(dist.values())

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
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

    def _dense_recalibrate(self, raw: list[float]) -> list[float]:
        fixed = []
        for p in raw:
            predicted, realised = self._bins[bin_index(p)]
            fixed.append(p * (realised + BIN_PRIOR) / (predicted + BIN_PRIOR))
        total = sum(fixed)
        return [q / total for q in fixed] if total > 0.0 else raw


class ReferenceLookahead(LookaheadPolicy):
    """LookaheadPolicy with one sort of every extension per level and a respelling per step."""

    def _reference_next(
        self, ctx: PolicyContext, path: tuple[str, ...], actions: tuple[str, ...]
    ) -> dict[str, float]:
        history = ctx.session.history + path
        raw: list[tuple[str, float]]
        if isinstance(self.base, NextActionModel):
            raw = list(self.base.next_action_probabilities(ctx, history).items())
        else:
            sub = replace(
                ctx,
                session=replace(ctx.session, history=history),
                children=ctx.children if not path else {},
                max_depth=1,
            )
            raw = [(p.path[0], p.probability) for p in self.base.propose(sub) if len(p.path) == 1]
        spelling = {action_key(a): a for a in actions}
        dist: dict[str, float] = {}
        for action, p in raw:
            if (key := action_key(action)) in spelling:
                dist.setdefault(spelling[key], p)
        return dist

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        actions = unique_actions(ctx.actions)
        rank = {a: i for i, a in enumerate(actions)}
        sid = ctx.session.session_id
        out: list[Proposal] = []
        kept: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
        for _ in range(min(self.depth, ctx.max_depth)):
            scored: list[tuple[tuple[str, ...], float]] = []
            for path, p_path in kept:
                for action, p in self._reference_next(ctx, path, actions).items():
                    joint = min(1.0, max(0.0, p_path * p))
                    if joint > 0.0:
                        scored.append(((*path, action), joint))
            scored.sort(key=lambda item: (-item[1], tuple(rank[a] for a in item[0])))
            kept = scored[: self.beam]
            if not kept:
                break
            out.extend(Proposal(sid, path, p) for path, p in kept)
        return sort_proposals(out, actions)
