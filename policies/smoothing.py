"""The arithmetic of ``markov``'s estimate (``policies.markov``'s module doc, steps 1-5).

Pure functions over count rows and priors, kept apart from the policy's state and memos so that
each formula can be read, and checked against ``tests/unit/policies/reference.py``, on its own:
the contexts of a history, the base prior, interpolated absolute discounting (Ney, Essen &
Kneser 1994) with its discount estimate, and the recalibration bins' edges.
"""

from __future__ import annotations

import bisect
import functools

from orchestrator.core.poses import ACTION_NAMES
from policies.base import action_key

__all__ = [
    "BASE_SINGLE",
    "BIN_PRIOR",
    "DEFAULT_KEYS",
    "EDGES",
    "EMPTY_ROW",
    "STREAK_MAX",
    "STREAK_MIN",
    "Counts",
    "base_prior",
    "bin_index",
    "clamp_all",
    "contexts",
    "ney_discount",
    "row_of",
    "shrink",
    "shrink_minus",
]

Counts = dict[tuple[str, ...], dict[str, int]]
"""context (normalised actions, oldest first) -> normalised next action -> count."""

STREAK_MIN, STREAK_MAX = 3, 6


def contexts(history: tuple[str, ...], order: int) -> list[tuple[str, ...]]:
    """The contexts of ``history`` (normalised actions), general to specific (module doc)."""
    out: list[tuple[str, ...]] = [()]
    for n in range(1, min(order, len(history)) + 1):
        out.append(history[len(history) - n :])
    if order >= 2 and history:
        last, k = history[-1], 0
        for a in reversed(history):
            if a != last:
                break
            k += 1
        if k >= STREAK_MIN:
            out.append(("*", last, str(min(k, STREAK_MAX))))
    return out


BASE_SINGLE: dict[str, float] = {
    "w": 0.5, "left": 0.15, "right": 0.15, "a": 0.05, "d": 0.05, "s": 0.04, "up": 0.03,
    "down": 0.03,
}  # fmt: skip
"""The single keys' share of the base prior (step 1). A judgement, not a measurement: walking
forward is the default motion (the root chunk is ``w-31``, DESIGN.md), then looking sideways;
human navigation traces are described as mostly forward with 10-15 % turns each side."""


@functools.lru_cache(maxsize=64)
def base_prior(keys: tuple[str, ...]) -> list[float]:
    """Step 1: half uniform over ``keys``, half ``BASE_SINGLE`` (renormalised to the keys).
    Cached per action set (the same every call); callers never mutate the list."""
    single = [BASE_SINGLE.get(k, 0.0) for k in keys]
    total = sum(single)
    u = 1.0 / len(keys)
    if total <= 0.0:
        return [u] * len(keys)
    return [0.5 * u + 0.5 * w / total for w in single]


EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Lower edges of the recalibration bins of p (finer near 0, where most forecasts are)."""
BIN_PRIOR = 2.0
"""Pseudo-mass (in forecasts' worth of probability) holding each bin's factor near 1."""
DEFAULT_KEYS = tuple(action_key(a) for a in ACTION_NAMES)


def bin_index(p: float) -> int:
    """The recalibration bin of ``p``: the index of the last edge of ``EDGES`` <= p (0 below)."""
    return max(0, bisect.bisect_right(EDGES, p) - 1)


def row_of(
    table: Counts, c: tuple[str, ...], index: dict[str, int], covers: bool
) -> dict[str, int]:
    """The counts after context ``c``, restricted to the keys of ``index`` (the live row
    itself when every action ever seen is a key: callers never mutate it)."""
    found = table.get(c)
    if not found:
        return EMPTY_ROW
    if covers:
        return found
    return {a: n for a, n in found.items() if a in index}


EMPTY_ROW: dict[str, int] = {}
"""The row of a context never seen (shared: callers never mutate a row)."""


def clamp_all(probs: list[float]) -> tuple[float, ...]:
    """Each p clamped to [0, 1]; a p already inside (0, 1] is itself (0.0, -0.0, NaN and the
    out-of-range take min/max, as every p once did: -0.0 becomes 0.0)."""
    return tuple([p if 0.0 < p <= 1.0 else min(1.0, max(0.0, p)) for p in probs])


def shrink(
    counts: dict[str, int], seen: int, prior: list[float], strength: float, discount: float,
    index: dict[str, int],
) -> list[float]:  # fmt: skip
    """Interpolated absolute discounting toward ``prior`` (module doc, step 2):
    ``(max(n_a - D, 0) + (D * T + strength) * prior_a) / (n + strength)``, T = ``seen``
    (actions with a count > 0). ``counts``: the nonzero counts by action (keys of ``index``);
    an action without a count gets ``back * prior_a / denom``, which is what the dense
    formula's ``(0.0 + back * prior_a) / denom`` evaluates to, bit for bit."""
    total = sum(counts.values())
    if total <= 0:
        return prior
    back = discount * seen + strength
    denom = total + strength
    out = [back * q / denom for q in prior]
    for a, n in counts.items():
        if n > discount:
            i = index[a]
            out[i] = (n - discount + back * prior[i]) / denom
    return out


def shrink_minus(
    a: dict[str, int], b: dict[str, int], prior: list[float], strength: float, discount: float,
    index: dict[str, int],
) -> list[float]:  # fmt: skip
    """``shrink`` of the counts ``a - b`` per action (``b``'s scope is inside ``a``'s: the
    exclusive counts of steps 2-3) without building ``a - b`` (two dict copies per level were
    a third of a forecast's time). T counts the actions whose difference is > 0. Normally every
    key of ``b`` is in ``a``; a negative difference (a session id reused on two memories) counts
    in the total, as the dense form counts it. The same total (integer counts: the order of the
    sum changes nothing), the same T, the same terms per action as building the difference."""
    seen = len(a)
    if not b:  # the usual case for a thin session row
        return shrink(a, seen, prior, strength, discount, index)
    total = sum(a.values()) - sum(b.values())
    if total <= 0:
        return prior
    get = a.get
    for k, v in b.items():
        old = get(k, 0)
        if old > 0 >= old - v:
            seen -= 1
    back = discount * seen + strength
    denom = total + strength
    out = [back * q / denom for q in prior]
    drop = b.get
    for k, n in a.items():
        left = n - drop(k, 0)
        if left > discount:  # an action only in b has a negative difference: never counted
            i = index[k]
            out[i] = (left - discount + back * prior[i]) / denom
    return out


def ney_discount(n1: int, n2: int) -> float:
    """Ney et al.'s estimate ``D = n1 / (n1 + 2 n2)`` from how many (context, action) counts are
    exactly 1 and exactly 2, clamped to [0.3, 0.95]; 0.75 before any repetition is seen."""
    if n1 + n2 == 0 or n1 == 0:
        return 0.75
    return min(0.95, max(0.3, n1 / (n1 + 2 * n2)))
