"""The prediction side of ``markov``: ``P(a | h)`` from its counts, memoised, and ``propose``.

``MarkovPolicy`` (``policies.markov``) keeps the counts and the step-5 bins' masses and learns
them from ``observe``; this mixin it inherits reads them: steps 1-5 of ``policies.markov``'s
module doc for a history (arithmetic in ``policies.smoothing``), the next-action vector, and the
proposals. It is apart because it is the hot path (the live state and lookahead's beam ask it
many times per observed event) with its own memos, valid until the next ``observe``, while the
learning side is what changes them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.core.build import new_proposal
from orchestrator.core.types import PolicyContext, Proposal
from policies.base import SessionAnswers, action_key, sort_proposals, unique_actions
from policies.smoothing import (
    BIN_PRIOR,
    EDGES,
    EMPTY_ROW,
    STREAK_MAX,
    Counts,
    base_prior,
    clamp_all,
    contexts,
    ney_discount,
    row_of,
    shrink,
    shrink_minus,
)

__all__ = ["MarkovPrediction"]

_MEMO_MAX = 200_000
"""Entries a prediction memo may hold before it is emptied (it is emptied on every observe
anyway; this bounds a host that asks without ever observing)."""


@dataclass(frozen=True, slots=True)
class _KeySet:
    """The distinct actions a caller offers (its spelling), their normalised keys, each key's
    index, and the base prior over them (step 1)."""

    serial: int  # names it in memo keys (cheaper to hash than the actions)
    actions: tuple[str, ...]
    keys: tuple[str, ...]
    index: dict[str, int]
    base: list[float]


_SKIP: tuple[int, list[float]] = (0, [])
"""Memo entry of a context level skipped for want of global evidence (``min_count``)."""


class MarkovPrediction:
    """Prediction over ``MarkovPolicy``'s counts (the fields declared here are set by
    ``MarkovPolicy.__init__``; the memos by ``_init_memos``)."""

    order: int
    alpha: float
    min_count: int
    beta: float
    top_k: int
    depth: int
    kappa: float
    calibrate: bool
    _bins: list[list[float]]
    _global: Counts
    _memory: dict[str, Counts]
    _session: dict[str, Counts]
    _cold: dict[str, Counts]
    _seen: set[str]
    _n1: int
    _n2: int

    def _warm(self, memory_id: str) -> None:
        raise NotImplementedError  # MarkovPolicy's

    def _init_memos(self) -> None:
        """The prediction's memos, empty (``MarkovPolicy.__init__`` calls it last)."""
        # Memos of the prediction (see "prediction" below), valid until the next observe().
        self._keysets: dict[tuple[str, ...], _KeySet] = {}  # ctx.actions -> its key set
        self._keyset_serial = 0
        # (chain id, context) -> (the chain id with that level, the level's S), or _SKIP; a
        # chain starts at (actions' key set, memory, session) -> its id (``_raw``)
        self._memo: dict[tuple[int, tuple[str, ...]], tuple[int, list[float]]] = {}
        self._roots: dict[tuple[int, str, str], int] = {}
        self._ids = itertools.count(1)
        self._final: dict[int, tuple[float, ...]] = {}  # chain id -> P(a | h)
        # history tail -> its contexts (normalised; they depend on the history alone: kept)
        self._tail = max(self.order, STREAK_MAX)
        self._contexts: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {}
        self._answers = SessionAnswers()  # propose's, valid until the next observe
        self._covers: dict[tuple[str, ...], bool] = {}  # keys -> every seen action is a key
        self._calibration: tuple[list[float], list[float]] | None = None  # step 5's factors
        self._discount: float | None = None  # ney_discount(n1, n2)

    # -- prediction -------------------------------------------------------------------------
    #
    # The arithmetic is ``policies.markov``'s module doc's, term for term and in the same order
    # (so results are bit-identical to the straightforward implementation kept in the tests,
    # tests/unit/policies/reference.py); what changes is how much of it is done per call:
    # - count rows stay sparse dicts of the actions seen (a few of the 24), and a shrink only
    #   fixes up the entries with counts (a zero count's term is ``back * q / denom``);
    # - each context level's result is memoised per (actions, memory, session, contexts so far)
    #   until the next ``observe`` (the only thing that changes counts, bins or the discount):
    #   lookahead's beam asks the same session about many hypothetical histories sharing their
    #   shorter contexts, and the live state asks it again when only the cursor's children
    #   changed.

    def _keyset(self, actions: tuple[str, ...]) -> _KeySet:
        """The distinct actions of ``actions`` (first spelling), their keys, the base prior."""
        found = self._keysets.get(actions)
        if found is None:
            distinct = unique_actions(actions)
            keys = tuple(action_key(a) for a in distinct)
            self._keyset_serial += 1
            found = _KeySet(self._keyset_serial, distinct, keys,
                            {k: i for i, k in enumerate(keys)},
                            base_prior(keys) if keys else [])  # fmt: skip
            if len(self._keysets) >= _MEMO_MAX:
                self._keysets.clear()
            self._keysets[actions] = found
        return found

    def _clear_memos(self) -> None:
        """Every memoised level and answer dropped (counts changed, or a bound was reached)."""
        self._memo.clear()
        self._roots.clear()
        self._final.clear()
        self._answers.clear()

    def _forget(self) -> None:
        """Counts changed: every memoised prediction is stale."""
        self._clear_memos()
        self._covers.clear()
        self._calibration = None
        self._discount = None

    def _raw(
        self, kx: _KeySet, ctxs: Iterable[tuple[str, ...]], memory_id: str, session_id: str,
        memoise: bool = True,
    ) -> tuple[list[float], int]:  # fmt: skip
        """Steps 1-4 of the markov doc for ``kx.keys`` over the contexts ``ctxs`` of a history
        (``contexts()``, general to specific); also the id of the context chain it went
        through, which names the answer in ``_final`` (``memoise`` False: levels are neither
        looked up in the memo nor added to it, the values are the same, the id is 0)."""
        memo = self._memo
        if len(memo) >= _MEMO_MAX:
            self._clear_memos()
        covers = self._covers.get(kx.keys)
        if covers is None:
            covers = self._covers[kx.keys] = self._seen <= kx.index.keys()
        d = self._discount
        if d is None:
            d = self._discount = ney_discount(self._n1, self._n2)
        empty: Counts = {}
        if self._cold:
            self._warm(memory_id)
        gtab = self._global
        memory = self._memory.get(memory_id, empty)
        session = self._session.get(session_id, empty)
        ix = kx.index
        s = kx.base
        # A chain of context levels is named by an int (a new one per level computed), so a
        # memo key is (int, context) rather than nested tuples whose hash is recomputed.
        chain = 0
        if memoise:
            root = (kx.serial, memory_id, session_id)
            found = self._roots.get(root)
            if found is None:
                found = self._roots[root] = next(self._ids)
            chain = found
        n = 0
        # Counts are >= 1 (``observe`` only adds), so with min_count 1 (the default) a level
        # lacks global evidence exactly when its row is empty: no sum of the row per level.
        min_count = self.min_count
        for c in ctxs:
            # The memo also keeps a context level skipped for want of global evidence (_SKIP):
            # it depends on the global counts at c alone, and finding it is most of the work.
            key = (chain, c)
            hit = memo.get(key) if memoise else None
            if hit is None:
                n_all = row_of(gtab, c, ix, covers)
                if not n_all if min_count == 1 else sum(n_all.values()) < min_count:
                    if memoise:
                        memo[key] = _SKIP
                    continue
                # ``row_of`` of the memory and the session, inlined (most levels of a
                # hypothetical history find neither).
                n_mem = memory.get(c) or EMPTY_ROW
                if n_mem and not covers:
                    n_mem = row_of(memory, c, ix, covers)
                n_ses = session.get(c) or EMPTY_ROW
                if n_ses and not covers:
                    n_ses = row_of(session, c, ix, covers)
                s = self._level(n, n_all, n_mem, n_ses, s, d, ix)
                if memoise:
                    chain = next(self._ids)
                    memo[key] = (chain, s)
            elif hit is _SKIP:
                continue
            else:
                chain, s = hit
            n += 1
        if n == 0:  # no level with global evidence: level 0 on the (thin) empty context
            c = ()
            s = self._level(0, row_of(gtab, c, ix, covers), row_of(memory, c, ix, covers),
                            row_of(session, c, ix, covers), s, d, ix)  # fmt: skip
        return s, chain

    def _level(
        self, n: int, n_all: dict[str, int], n_mem: dict[str, int], n_ses: dict[str, int],
        s: list[float], d: float, ix: dict[str, int],
    ) -> list[float]:  # fmt: skip
        """One context level of steps 2-4: global (other memories), memory, session."""
        # The previous level's session estimate is this level's global prior: what the viewer
        # and their memory showed in a shorter context carries into a longer one. c0 globally:
        # additive (no discount), so the base prior fades as traffic arrives even when that
        # traffic spreads over every action.
        strength, discount = (self.kappa, d) if n else (self.alpha, 0.0)
        if not n_mem and not n_ses:
            # What a hypothetical history mostly meets (lookahead's deeper paths): counts on
            # other memories only. Steps 3 and 4 then have no counts and return their prior
            # as it is (shrink_minus of two empty rows and shrink of one do), so step 2 is
            # the level; the same values without the two calls.
            return shrink(n_all, len(n_all), s, strength, discount, ix)
        g = shrink_minus(n_all, n_mem, s, strength, discount, ix)
        m = shrink_minus(n_mem, n_ses, g, self.beta, d, ix)
        return shrink(n_ses, len(n_ses), m, self.beta, d, ix)

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        """``P(a | history)`` for every distinct action of ``ctx.actions`` (markov doc, 1-5).

        Scopes are ``ctx.session.session_id`` and ``ctx.session.memory_id``. Keys are spelled as
        in ``ctx.actions``; values sum to 1 (up to rounding), or the dict is empty if no actions.
        """
        actions, probs = self.next_action_vector(ctx, history)
        return dict(zip(actions, probs, strict=True))

    def next_action_vector(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """``next_action_probabilities`` as two aligned tuples (``policies.base.NextActionVector``):
        the distinct actions of ``ctx.actions`` in their order (``unique_actions``; one tuple
        object per ``ctx.actions`` while its key set is kept) and their P, each in [0, 1]. No
        dict is built: lookahead ranks a level's children by position. Callers must not
        mutate anything returned (the tuples are kept)."""
        kx = self._keyset(ctx.actions)
        if not kx.actions:
            return (), ()
        # contexts() reads the last ``order`` actions and a streak capped at STREAK_MAX, so the
        # tail of the history is all that matters; its contexts are kept (they depend on the
        # history alone, not on the counts).
        tail = history[-self._tail :]
        ctxs = self._contexts.get(tail)
        if ctxs is None:
            if len(self._contexts) >= _MEMO_MAX:
                self._contexts.clear()
            h = tuple([action_key(a) for a in tail])
            ctxs = self._contexts[tail] = tuple(contexts(h, self.order))
        raw, chain = self._raw(kx, ctxs, ctx.session.memory_id, ctx.session.session_id)
        out = self._final.get(chain)
        if out is None:
            out = self._final[chain] = self._recalibrate(raw) if self.calibrate else clamp_all(raw)
        return kx.actions, out

    def _recalibrate(self, raw: list[float]) -> tuple[float, ...]:
        """Step 5: each p times its bin's realised / predicted mass (shrunk to 1), renormalised,
        then clamped to [0, 1] (``clamp_all``)."""
        factors = self._calibration
        if factors is None:
            # Indexed by bisect_right(EDGES, p), i.e. bin + 1, where a p below every edge (a
            # negative one) is bin 0 as well: one lookup per p instead of max(0, ... - 1).
            num = [realised + BIN_PRIOR for _, realised in self._bins]
            den = [predicted + BIN_PRIOR for predicted, _ in self._bins]
            factors = self._calibration = ([num[0], *num], [den[0], *den])
        num, den = factors
        n0, d0, e1 = num[0], den[0], EDGES[1]
        right, edges = bisect.bisect_right, EDGES
        # The same p * num / den as before, in the same order; most p of 24 actions are below
        # the first edge (bin 0), which needs no bisect (NaN fails p < e1 and bisects, as it did).
        fixed = [p * n0 / d0 if p < e1 else p * num[b := right(edges, p)] / den[b]
                 for p in raw]  # fmt: skip
        total = sum(fixed)
        if not total > 0.0:
            return clamp_all(raw)
        # Clamped to [0, 1]; a p already inside (0, 1] is itself (0.0, -0.0, NaN and the
        # out-of-range take min/max, as every p once did: -0.0 becomes 0.0).
        return tuple([x if 0.0 < (x := q / total) <= 1.0 else min(1.0, max(0.0, x))
                      for q in fixed])  # fmt: skip

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The ``top_k`` most probable next actions, and ``top_k`` children of each proposed path
        per further level up to ``min(depth, ctx.max_depth)``; P = product of step probabilities.

        Ties are broken by the order of ``ctx.actions``. Prefixes of every path are included.
        The answer reads only the session, memory and history, ``ctx.actions`` and
        ``ctx.max_depth`` (not the cursor's children nor the time), so it is kept per session
        until the next ``observe`` and repeated when those are unchanged (a host asks again
        when only the cursor's children changed).
        """
        return self._answers.get(ctx, self._propose)

    def _propose(self, ctx: PolicyContext) -> list[Proposal]:
        levels = min(self.depth, ctx.max_depth)
        sid, history, top_k = ctx.session.session_id, ctx.session.history, self.top_k
        if levels == 1:
            # Sorted by (-P, position in ctx.actions): what sort_proposals' order is for one
            # level (a stable sort keeps equal P in position order), so no second sort.
            actions, probs = self.next_action_vector(ctx, history)
            neg = [-p for p in probs]
            return [new_proposal(sid, (actions[i],), probs[i])
                    for i in sorted(range(len(neg)), key=neg.__getitem__)[:top_k]]  # fmt: skip
        out: list[Proposal] = []
        frontier: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
        for _ in range(levels):
            nxt: list[tuple[tuple[str, ...], float]] = []
            for path, p_path in frontier:
                actions, probs = self.next_action_vector(ctx, history + path)
                neg = [-p for p in probs]
                for i in sorted(range(len(neg)), key=neg.__getitem__)[:top_k]:
                    nxt.append(((*path, actions[i]), p_path * probs[i]))
            out.extend([new_proposal(sid, path, p) for path, p in nxt])
            frontier = nxt
        return sort_proposals(out, self._keyset(ctx.actions).actions)
