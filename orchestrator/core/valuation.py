"""The marginal value of starting one candidate chunk now: the frontier's arithmetic (pure).

Apart from ``frontier`` because it is the one formula every path shares: ``frontier.ranked``
and ``frontier.interests`` (the plain path), ``VoteIndex.walk`` (the lazy walk) and
``admit.admit_indexed`` (which repeats ``value`` inline) all value through it, so a candidate is
bit-identical whichever path ranked it. It knows numbers (P, lead, depth, step, E, cold start),
not keys, votes or sessions' proposals.

Source: DESIGN.md, "The value of a speculative chunk".

Marginal value of starting candidate x now (``value``; all times in seconds, costs in GPU-s)
------------------------------------------------------------------------------------------

Notation: ``P`` its probability; ``E = expected_gpu_s(timing)`` the generation time;
``C`` the cold start this very start would pay (0 on a warm container, ``Timing.cold_start_s``
once ``PlanInput.warm_idle`` is used up); ``S = chunk_duration_s + think_s`` the session's step
(its own think time when the live state estimated one, ``SessionView.think_s``); depth d;
``L = need_time - now`` the lead, with ``need_time = max(now, watch_started_at + d * S)``.

1. Saving of a chunk started with lead ``l``: it is ready ``C + E`` after the start, a demand
   job takes ``E`` (the demand lands on the container speculation would have booted, or a warm
   one), so ``saved(l) = max(0, min(E, l - C))`` seconds of wait.
2. The alternative to starting now is not "never" but "at the next decision point": for d = 1
   that is the request itself (a demand: lead 0); for d >= 2 it is the viewer's request of the
   parent, after which the lead is ``min(L, S)``, and the guess is known one level better.
   Waiting is worth only what it can reveal, so the deferred saving is weighted by ``1 - P``
   (a certain chunk, P = 1, starts as early as the serial chain allows):
   ``benefit_s = P * max(0, saved(L) - (1 - P) * min(E, L, S))`` for d >= 2 (the deferred start
   valued warm, like the demand) and ``P * saved(L)`` for d = 1. An uncertain grandchild is
   worth starting now mostly for the lead time it gains over waiting one step: when
   ``E <= S`` (short chunks) that gain is ~0 and speculation stays one level deep; when
   ``E >> S`` (A100) each level gains a full ``S``. This is how depth follows (G, W).
3. The real extra cost: a correct guess would have been generated on demand anyway, so only a
   wrong one is waste, and it is cancelled when the viewer's choice reveals it (the core's
   reachability rule): it runs ``run = min(C + E, L)`` before its fate is known. The cold
   load is paid even by a correct guess (a demand would not have booted a container). So
   ``waste_gpu_s = (1 - P) * run + P * min(C, L)`` (an upper bound for d >= 2: a viewer who
   leaves the branch one level up cancels it sooner).
4. ``score = benefit_s / waste_gpu_s``: expected seconds of wait saved per expected wasted
   GPU-second; ``inf`` when nothing can be wasted (P = 1, no cold start) but wait is saved, 0
   when nothing is saved. For d = 1 on a warm container both terms carry ``min(E, L)``, so
   ``score = P / (1 - P)``, the odds: the threshold ``Budget.min_benefit_per_gpu_s`` = t
   admits a depth-1 guess with P > t / (1 + t) in every regime, which is the point of having
   one exchange rate between viewer seconds and GPU-seconds.
5. ``charge_gpu_s = run`` is taken from the token bucket at the start; the live state gives it
   back when the chunk is requested (hit or in-flight hit: not waste) and the planner gives
   back the part not run when it cancels the job. The bucket therefore meters waste, and the
   default 2 GPU-s/s is a cap on wasted GPU time, not on correct guesses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from orchestrator.core.types import PlanInput, SessionView, Timing


def expected_gpu_s(timing: Timing) -> float:
    """E = gpu_s_per_chunk + cold_start_s (GPU-seconds; never negative).

    The cold start is part of E for callers that do not know which containers are warm
    (``PlanInput.warm_idle`` None): every start, speculative or demand, is assumed to pay it.
    """
    return max(0.0, timing.gpu_s_per_chunk + timing.cold_start_s)


def warm_gpu_s(inp: PlanInput) -> float:
    """E of a start on a warm container: ``expected_gpu_s`` when warmth is unknown, else G."""
    if inp.warm_idle is None:
        return expected_gpu_s(inp.timing)
    return max(0.0, inp.timing.gpu_s_per_chunk)


def step_s(session: SessionView, timing: Timing) -> float:
    """S = chunk_duration_s + think time (the session's estimate, else ``timing.think_s``)."""
    think = timing.think_s if session.think_s is None else session.think_s
    return timing.chunk_duration_s + max(0.0, think)


def need_time(session: SessionView, depth: int, timing: Timing, now: float) -> float:
    """When a depth-``depth`` descendant of the cursor is expected to be requested (seconds).

    ``max(now, watch_started_at + depth * step_s(session, timing))``.
    """
    return max(now, session.watch_started_at + depth * step_s(session, timing))


class Value(NamedTuple):
    """``value``'s result: seconds saved, GPU-seconds expected wasted and charged, and score."""

    benefit_s: float
    waste_gpu_s: float
    charge_gpu_s: float
    score: float


def value(p: float, lead: float, depth: int, step: float, e: float, cold: float = 0.0) -> Value:
    """Marginal value of starting a candidate now (module doc, steps 1-5).

    Args:
        p: its probability, in [0, 1].
        lead: ``need_time - now`` (seconds, >= 0).
        depth: levels below the cursor (>= 1).
        step: the session's step S (seconds).
        e: generation time E on a warm container (GPU-seconds).
        cold: cold-start seconds this start would pay (0 on a warm container).

    Example: P 0.6, depth 1, lead 13 s, E 210: benefit 7.8 s, waste 5.2 GPU-s, charge 13,
    score 1.5 (= 0.6 / 0.4).

    ``admit._warm_value`` repeats this arithmetic for cold 0 on the planner's hot path: change
    both together (``tests/unit/core/test_admit.py`` compares them bit for bit).
    """
    saved = lead - cold
    if saved > e:
        saved = e
    if not saved > 0.0:
        saved = 0.0
    if depth >= 2:
        # Deferred to the parent's request: then the lead is one step (or what is left of it);
        # the deferred start is valued warm, as the demand is.
        later = step if step < lead else lead
        if later > e:
            later = e
        if later > 0.0:
            saved -= (1.0 - p) * later  # waiting is worth only what it can reveal
        if not saved > 0.0:
            saved = 0.0
    benefit = p * saved if saved > 0.0 else 0.0
    run = cold + e
    if lead < run:
        run = lead if lead > 0.0 else 0.0
    load = cold if cold < run else run
    waste = (1.0 - p) * run + p * load
    nothing_wasted = math.inf if benefit > 0.0 else 0.0
    score = benefit / waste if waste > 0.0 else nothing_wasted
    return Value(benefit, waste, run, score)


def benefit_s(
    probability: float, need: float, now: float, timing: Timing, depth: int = 1,
    step: float | None = None,
) -> float:  # fmt: skip
    """Expected seconds of wait saved by starting now (``value(...).benefit_s``, warm start).

    With depth 1: ``P * min(E, need - now)`` (0 when the need time has passed).
    """
    s = timing.chunk_duration_s + timing.think_s if step is None else step
    lead = need - now
    return value(probability, lead if lead > 0.0 else 0.0, depth, s, expected_gpu_s(timing))[0]
