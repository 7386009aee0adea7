"""``markov``: an online n-gram model over actions, shrunk session -> memory -> global.

Viewers repeat themselves (someone walking forward tends to keep walking forward) and viewers of
the same photo tend to head for the same things in it. The model counts, for every context (the
last few actions, and how long the last one has been held), which action came next, at three
scopes: this session, the other sessions on this memory, the sessions on other memories. It
learns only from ``observe`` events. Issue 11 measured the previous version overconfident at the
top (predicted 0.94, realised 0.70) and underconfident in the tails (0.14 -> 0.26); this one is
built so that each piece of evidence counts once and every estimate is shrunk toward a wider one.

The formula, exactly (so an analyst can recompute any probability by hand)
--------------------------------------------------------------------------

Notation:

- ``A``: the distinct actions of ``ctx.actions`` (``|A|`` of them; 24 by default).
- ``h``: the history the prediction is for: ``ctx.session.history``, extended by the path so far
  when chaining deeper. Its contexts, general to specific: ``c_0 = ()``, ``c_n`` = the last n
  actions for n = 1..order, and, when order >= 2 and the last action has been repeated k >= 3
  times, ``c_streak = ("*", last, min(k, 6))`` (a held key is held a little longer each time).
- ``N_x(c, a)``: observed events at scope x whose history ends in context c, followed by a.
  Every event is counted once per scope it belongs to; the estimate uses *exclusive* counts so
  that no event is evidence twice: ``g`` = events on other memories (``N_all - N_memory``),
  ``m`` = other sessions on this memory (``N_memory - N_session``), ``s`` = this session.
  ``N_x(c) = sum over a in A of N_x(c, a)``.
- Parameters ``alpha``, ``kappa``, ``beta`` (see ``MarkovPolicy``).

1. Base: ``B(a) = 0.5 / |A| + 0.5 * BASE_SINGLE(a)`` (renormalised over ``A``): half uniform,
   half a judgement that viewers mostly walk forward and look sideways (``BASE_SINGLE``), worth
   ``alpha`` pseudo-observations in all (not one per action: the old prior of one per action
   over all 24 made every thin context almost uniform). Data overrides it within a few events.
2. Shrinkage is interpolated absolute discounting (Kneser-Ney style; Ney, Essen & Kneser 1994):
   for counts ``n_a`` (total N, T actions seen) and a prior q,
   ``shrink(n, q, s)(a) = (max(n_a - D, 0) + (D * T + s) * q(a)) / (N + s)`` (q itself when
   N = 0). ``D = n1 / (n1 + 2 n2)`` is estimated from the global table (n1, n2: how many
   (context, action) counts are exactly 1 and 2; clamped to [0.3, 0.95]): unpredictable
   traffic (many singletons) backs off hard, repetitive traffic trusts its counts.
   One chain through context levels and scopes, general to specific: ``S_{-1} = B``; for each
   context level n with any global evidence,
   ``G_n = shrink(N_g(c_n), S_{n-1}, kappa)``, except ``G_0 = shrink(N_g(c_0), B, alpha)`` with
   D = 0 (plain additive smoothing: the base prior fades after a few dozen events however
   they spread over the actions),
3. ``M_n = shrink(N_m(c_n), G_n, beta)`` (memory, toward the global estimate),
4. ``S_n = shrink(N_s(c_n), M_n, beta)`` (session, toward the memory's). ``P_raw = S_L`` at the
   most specific level L. So what the viewer and their memory showed in a shorter context is
   the prior of a longer one (a lone viewer's own habit is learned at every level), and a
   longer context with plenty of evidence elsewhere overrides it.
5. Calibration (``calibrate``, on by default; histogram binning, Zadrozny & Elkan 2001, online):
   every observed event's forecasts, made before it is counted, are added to bins of p (edges
   0, .02, .05, .1, .2, ..., .9): predicted mass ``PM_b`` (sum of p) and realised mass ``RM_b``
   (how many came true). Then ``P(a | h) = P_raw(a) * f_b / sum_x P_raw(x) * f_b(x)`` with
   ``f_b = (RM_b + 2) / (PM_b + 2)`` for the bin of ``P_raw(a)``: a bin whose forecasts came
   true less often than predicted is scaled down. It corrects what the smoothing gets wrong
   for the traffic at hand (a viewer's own streak is in their session counts and in the
   context both, which makes the raw top forecast overconfident), without an operator knob.

Each level sums to 1 over ``A``. A new session on a known memory starts at the memory's
statistics, a new memory at the other memories', a new service at ``B``.

The arithmetic of steps 1-5 (the contexts, ``BASE_SINGLE`` and the base prior, the shrink and
its discount, the bins' edges) is in ``policies.smoothing``; the prediction over the counts (the
next-action vector, its memos, ``propose``) in ``policies.prediction``, which ``MarkovPolicy``
inherits; this module keeps the counts and the bins' masses and learns them.

A path's probability is the product of its steps, each predicted on the history extended by the
steps before it (the counts do not change): ``P(a1, a2 | h) = P(a1 | h) * P(a2 | h + (a1,))``.

``ctx.memory_history`` is deliberately not used: the same actions arrive as ``observe`` events,
and reading both would count them twice. Action names are compared after
``orchestrator.core.poses.normalize_action`` (``"right+w"`` is ``"w+right"``).

State grows with the number of distinct (scope, context, action) triples seen: at most
``order + 2`` counter increments per scope per observed action. A host that evicts sessions and
cold memories calls ``forget_session`` / ``forget_memory`` (``policies.base.Forgetting``), so
the session and memory tables are bounded by the live ones; the global table is bounded by the
contexts (at most ``24^order`` plus the streak contexts, times 24 actions).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, defaultdict
from collections.abc import Iterable

from orchestrator.core.types import ActionObserved
from policies.base import action_key
from policies.prediction import MarkovPrediction
from policies.smoothing import (
    DEFAULT_KEYS,
    EDGES,
    STREAK_MAX,
    Counts,
    contexts,
)

__all__ = ["MarkovPolicy"]


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


class MarkovPolicy(MarkovPrediction):
    """Online n-gram predictor shrunk session -> memory -> global (formula: module doc).

    Args:
        order: longest n-gram context, in actions (default 2: the last two choices, ~10 s of
            viewing; with 24 actions there are 576 two-action contexts). With order >= 2 a held
            key's streak length is one more context level.
        alpha: strength of the uniform base, in pseudo-observations in all (default 1.0).
            Must be > 0.
        min_count: kept for configuration compatibility: a context level whose global count
            (all scopes) is below it is skipped (default 1: the chain's shrinkage already
            keeps a thin context near the shorter one).
        beta: extra prior strength, in observations, of the wider scope when estimating the
            narrower one, on top of the discount (default 4.0, a judgement call). Must be > 0.
        top_k: actions proposed per level (default 4; the core admits only those whose value
            clears its threshold, ``Budget.min_benefit_per_gpu_s``).
        depth: levels proposed (default 1); deeper paths chain the model on the hypothetical
            history, ``top_k`` children per proposed path, capped by ``ctx.max_depth``.
            ``policies.lookahead`` is the better tool for deep expansion.
        kappa: extra strength of a shorter context when estimating a longer one (default 4.0).
        calibrate: recalibrate online (step 5; default True).

    Raises:
        ValueError: a parameter out of range (the message names it).
    """

    name: str = "markov"

    def __init__(
        self,
        order: int = 2,
        alpha: float = 1.0,
        min_count: int = 1,
        beta: float = 4.0,
        top_k: int = 4,
        depth: int = 1,
        kappa: float = 4.0,
        calibrate: bool = True,
    ) -> None:
        self.order = _positive_int("order", order, 0)
        self.alpha = _positive_float("alpha", alpha)
        self.min_count = _positive_int("min_count", min_count, 1)
        self.beta = _positive_float("beta", beta)
        self.top_k = _positive_int("top_k", top_k, 1)
        self.depth = _positive_int("depth", depth, 1)
        self.kappa = _positive_float("kappa", kappa)
        if not isinstance(calibrate, bool):
            raise ValueError(f"calibrate must be true or false (got {calibrate!r})")
        self.calibrate = calibrate
        # step 5: per probability bin, predicted mass and realised mass of past forecasts
        self._bins: list[list[float]] = [[0.0, 0.0] for _ in EDGES]
        self._global: Counts = defaultdict(dict)
        self._memory: dict[str, Counts] = defaultdict(lambda: defaultdict(dict))
        self._session: dict[str, Counts] = defaultdict(lambda: defaultdict(dict))
        self._cold: OrderedDict[str, Counts] = OrderedDict()  # forget_memory's, oldest first
        self._seen: set[str] = set()  # every normalised action observed (the calibration's A)
        # step 5's key set: _seen plus the default actions, sorted (grows with _seen only)
        self._calibration_keys: tuple[str, ...] = tuple(sorted(set(DEFAULT_KEYS)))
        self._calibration_set: frozenset[str] = frozenset(self._calibration_keys)
        self._n1 = self._n2 = 0  # global (context, action) counts equal to 1 and to 2
        self.observed = 0  # events observed so far: lets a host or analyst see it is being fed
        self._init_memos()

    # -- learning ---------------------------------------------------------------------------

    def observe(self, event: ActionObserved) -> None:
        """Learn the temperature on this event (predicted first), then count it once per scope
        at every context of ``event.history``."""
        # contexts() reads the last ``order`` actions and a streak capped at STREAK_MAX: the
        # rest of a long walk's history changes nothing (it was normalised per event: O(steps)).
        tail = event.history[-max(self.order, STREAK_MAX) :]
        history = tuple(action_key(a) for a in tail)
        action = action_key(event.action)
        if self.calibrate:
            self._learn_calibration(history, action, event.memory_id, event.session_id)
        if self._cold:
            self._warm(event.memory_id)
        scopes = (self._global, self._memory[event.memory_id], self._session[event.session_id])
        for context in contexts(history, self.order):
            for counts in scopes:
                row = counts[context]
                row[action] = row.get(action, 0) + 1
            seen = self._global[context][action]  # count-of-counts for the discount
            if seen == 1:
                self._n1 += 1
            elif seen == 2:
                self._n1, self._n2 = self._n1 - 1, self._n2 + 1
            elif seen == 3:
                self._n2 -= 1
        self._seen.add(action)
        self.observed += 1
        self._forget()

    def forget_session(self, session_id: str) -> None:
        """The session was evicted: drop its own counts (``policies.base.Forgetting``). Only
        this session's predictions read them (step 4), so every other session's probabilities
        are unchanged; its events stay in the memory's and the global counts. (An id observed
        again afterwards starts with empty counts, and its step-5 forecasts differ from what
        they would have been: a host forgets only a session that is gone.)"""
        self._answers.forget(session_id)
        if self._session.pop(session_id, None) is not None:
            self._clear_memos()  # memo keys name the session: a reused id must start afresh

    def forget_memory(self, memory_id: str) -> None:
        """The memory went cold (no live session, no job): its counts move to a bounded store of
        cold memories (the ``COLD_MEMORIES`` most recently cooled), from which they come back
        intact if a viewer opens it again; beyond that bound the oldest cold memory's counts are
        dropped, and a session that later opens on it starts from the global statistics, as
        on a new memory. No live session's probabilities change (none is on a cold memory)."""
        table = self._memory.pop(memory_id, None)
        if table is None:
            return
        self._cold[memory_id] = table
        self._cold.move_to_end(memory_id)
        while len(self._cold) > COLD_MEMORIES:
            self._cold.popitem(last=False)
        self._clear_memos()

    def _warm(self, memory_id: str) -> None:
        """A cold memory's counts back in the live table (before it is read or counted)."""
        table = self._cold.pop(memory_id, None)
        if table is not None:
            self._memory[memory_id] = table

    def _learn_calibration(
        self, history: tuple[str, ...], action: str, memory: str, session: str
    ) -> None:
        """Step 5: add this event's forecasts (made before it is counted) to the bins."""
        keys = self._calibration_keys
        if action not in self._calibration_set:  # a new action: the key set grows
            keys = tuple(sorted(self._seen | {action} | set(DEFAULT_KEYS)))
            self._calibration_keys, self._calibration_set = keys, frozenset(keys)
        # No memo: the counts change right after this forecast, which empties it.
        ctxs = contexts(history, self.order)
        raw, _ = self._raw(self._keyset(keys), ctxs, memory, session, memoise=False)
        # Bin by bin, the same additions in the same order as one bin_index() call per key (adding
        # 0.0 to a realised mass, which starts at +0.0, changes nothing and is skipped).
        bins, edges, right, e1 = self._bins, EDGES, bisect.bisect_right, EDGES[1]
        for k, p in zip(keys, raw, strict=True):
            # Most p of 24 actions are below the first edge (bin 0, as a p below every edge
            # is): no bisect for them (NaN fails p < e1 and bisects, as it did).
            b = 0 if p < e1 else right(edges, p) - 1
            row = bins[b if b > 0 else 0]
            row[0] += p
            if k == action:
                row[1] += 1.0

    def counts(
        self,
        context: Iterable[str],
        *,
        memory_id: str | None = None,
        session_id: str | None = None,
    ) -> dict[str, int]:
        """Observed next-action counts after ``context`` (oldest first), for an analyst or a test.

        All scopes by default; ``memory_id`` or ``session_id`` (not both) narrows it. Keys are
        normalised action names; unseen contexts give ``{}``.
        """
        if memory_id is not None and session_id is not None:
            raise ValueError("give memory_id or session_id, not both")
        key = tuple(action_key(a) for a in context)
        if session_id is not None:
            table = self._session.get(session_id, {})
        elif memory_id is not None:
            table = self._memory.get(memory_id) or self._cold.get(memory_id, {})
        else:
            table = self._global
        return dict(table.get(key, {}))

    def reliability(self) -> list[tuple[float, float, float]]:
        """The step-5 bins as (lower edge of p, predicted mass, realised mass) (analysts)."""
        return [(edge, pm, rm) for edge, (pm, rm) in zip(EDGES, self._bins, strict=True)]

    def __repr__(self) -> str:
        return (
            f"MarkovPolicy(order={self.order}, alpha={self.alpha}, min_count={self.min_count}, "
            f"beta={self.beta}, top_k={self.top_k}, depth={self.depth}, kappa={self.kappa}, "
            f"calibrate={self.calibrate})"
        )


COLD_MEMORIES = 4096
"""Cold memories whose counts ``forget_memory`` keeps (they come back if the memory is opened
again): the per-memory state is bounded by the live memories plus this many."""
