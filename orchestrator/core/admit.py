"""Step e of ``plan()`` from the vote index: speculative starts straight from
``VoteIndex.walk``'s keys, without building a ``Candidate`` per key (pure).

Why (issue 10): in the simulator a plan's walk yielded ~14 candidates of which ~91 % the bucket
refused, and at 10^4 sessions a plan starts ~500 keys; a ``Candidate``, a second valuation and a
reason text per key were most of step e. Here a start is made from the key's lead vote and its
run's value, the reason text once per run, and a run whose keys would all be refused without
effect is dropped after its first key. The plan is the one the loop of
``plan_speculate._admit_speculation`` over ``VoteIndex.best_first`` gives
(``tests/unit/core/test_plan.py`` checks both against the plain algorithm).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Iterator, Mapping
from typing import NamedTuple

from orchestrator.core.budget import cold_start_s
from orchestrator.core.build import new_start_job
from orchestrator.core.tree import Key
from orchestrator.core.types import PlanInput, StartJob
from orchestrator.core.valuation import Value, value, warm_gpu_s
from orchestrator.core.vote_runs import _MARGIN, _Params
from orchestrator.core.votes import VoteIndex


class Admitted(NamedTuple):
    """``admit_indexed``'s answer: the speculative starts (best first), the bucket's tokens
    after paying them (GPU-seconds) and the smallest charge it refused (None: none)."""

    starts: list[StartJob]
    tokens: float
    short: float | None


def admit_indexed(
    inp: PlanInput, index: VoteIndex, held: dict[str, int], base: Mapping[str, int],
    taken: Collection[Key], free: int, room: int, before: int, tokens: float,
    short: float | None,
) -> Admitted:  # fmt: skip
    """Step e from the vote index: the loop of ``plan_speculate._admit_speculation`` over
    ``VoteIndex.walk``'s keys, each with its run's value: no ``Candidate`` is built, the start
    is made from the run's value and the key's lead vote (``_indexed_start``).

    Every key of a run has the same value and charge, so a run is dropped (its other keys
    skipped) as soon as one of its keys is refused for a reason that holds for all of them
    until the plan ends: its cold-start value does not clear the threshold (the cold start a
    start pays only grows within a plan: ``budget.cold_start_s``), or the bucket cannot pay
    its charge (the bucket only shrinks within the plan, and the refused charge is now
    ``bucket_short_gpu_s`` or above it; a cold charge is never below the warm one). A skipped
    key would have been refused with no effect, so the plan is the one the loop over every
    candidate gives.

    The walk is ``VoteIndex.walk``'s, written out here (no generator to resume, no tuple per
    key yielded, ``frontier.value``'s warm arithmetic inline, the key's state read once for its
    de-duplication and its lead vote): at ~5 keys a plan it was most of step e.
    ``tests/unit/core/test_admit.py`` compares it with the loop over ``walk``.

    Args:
        inp: the plan's input (``index`` usable for it: ``VoteIndex.fits``, ``safe``, ``holds``).
        held: session -> its speculative jobs where they differ from ``base`` (updated here).
        taken: keys no speculation may start (running or demanded).
        free, room: free slots, and speculative starts left under ``speculative_slot_cap``.
        before: starts planned before this step (they come first to the warm containers).
        tokens, short: the bucket's tokens and its smallest refused charge so far.
    """
    budget = inp.budget
    limit, min_score, now = budget.per_session_inflight, budget.min_benefit_per_gpu_s, inp.now
    min_p = budget.min_probability
    warm_idle, cold_s = inp.warm_idle, inp.timing.cold_start_s
    e = warm_gpu_s(inp)
    dropped: set[tuple[float, int, float, float]] = set()
    reasons: dict[tuple[tuple[float, int, float, float], float], str] = {}  # one per run
    starts: list[StartJob] = []
    # Slots, room under the cap and the cold start change only when a key is started.
    cold = cold_start_s(warm_idle, before, cold_s)
    # ``VoteIndex.walk`` from here: ub_s is monotone in p, so once below ub_s(min_p), no later
    # run has p >= min_p.
    floor_s = math.inf if min_p >= 1.0 else min_p / (1.0 - min_p) * (1.0 + _MARGIN)
    # (-score, -benefit, -p, key, run, value, the run's keys after it or None when it has no
    # other); keys are unique across runs, so the comparison never reaches the run.
    exact: list[tuple[float, float, float, Key, _Params, Value, Iterator[Key] | None]] = []
    runs, members_of, keys_state = index.parts()
    push, pop = heapq.heappush, heapq.heappop
    nxt = next(runs, None)
    while True:
        while nxt is not None:
            p, depth, t, step = nxt
            ub_s = math.inf if p >= 1.0 else p / (1.0 - p) * (1.0 + _MARGIN)  # votes._ub_s(p)
            if not ub_s > min_score or ub_s < floor_s:
                nxt = None  # no run from here on passes the score (or the P) filter
                break
            lead = t - now if t > now else 0.0
            if exact:
                ub_b = (1.0 if p >= 1.0 else p * (1.0 + _MARGIN)) * (e if e < lead else lead)
                # (best -score, -benefit) < (-ub_s, -ub_b), without building the tuples
                best = exact[0]
                if best[0] < -ub_s or (best[0] == -ub_s and best[1] < -ub_b):
                    break  # the best valued key ranks before every run not valued yet
            if p >= min_p:
                v = _warm_value(p, lead, depth, step, e)
                if v.score > min_score:
                    lists = members_of[nxt].lists
                    if len(lists) == 1 and len(lists[0]) == 1:  # a one-key run: no iterator
                        push(exact, (-v.score, -v.benefit_s, -p, lists[0][0], nxt, v, None))
                    else:
                        keys = iter(lists[0]) if len(lists) == 1 else itertools.chain(*lists)
                        first = next(keys)
                        push(exact, (-v.score, -v.benefit_s, -p, first, nxt, v, keys))
            nxt = next(runs, None)
        if not exact:
            break
        top = pop(exact)
        run = top[4]
        if dropped and run in dropped:
            continue  # the rest of the run goes with it
        key = top[3]
        state = keys_state[key]
        if not (key in taken or state.exists):  # de-duplication, as ``frontier.ranked``
            # The loop of ``plan_speculate._admit_speculation`` over this key.
            if free <= 0 or room <= 0:
                break
            voters = state.voters  # ``VoteIndex.lead``
            if len(voters) == 1:
                (lead_vote,) = voters.values()
            else:
                lead_vote = min(voters.values(), key=_lead_order)
            sid = lead_vote[0]
            mine = held.get(sid)
            if mine is None:
                mine = base.get(sid, 0)
            if mine < limit:
                v = top[5]
                refused = False
                if cold > 0.0:
                    # ``frontier.revalue``'s arithmetic (its lead: need_time - now, need =
                    # max(now, t))
                    v = value(run[0], (run[2] if run[2] > now else now) - now, run[1], run[3], e,
                              cold)  # fmt: skip
                    refused = not v.score > min_score  # worth it warm, not worth booting one
                if not refused:
                    charge = v.charge_gpu_s
                    cost = charge if charge > 0.0 else 0.0  # ``budget.try_spend``, inlined
                    if tokens < cost:
                        if short is None or charge < short:
                            short = charge
                        refused = True  # one with less lead time costs less: it may still fit
                    else:
                        tokens -= cost
                        held[sid] = mine + 1
                        reason = reasons.get((run, cold))
                        if reason is None:
                            reason = reasons[run, cold] = _reason(run[0], run[1], v, cold > 0.0)
                        starts.append(
                            _indexed_start(key, lead_vote, run, v, e + cold, reason, cold > 0.0)
                        )
                        free, room = free - 1, room - 1
                        cold = cold_start_s(warm_idle, before + len(starts), cold_s)
                if refused:
                    dropped.add(run)
                    continue  # dropped on this key: its successor need not be queued
        rest = top[6]
        if rest is not None:
            following = next(rest, None)
            if following is not None:
                push(exact, (top[0], top[1], top[2], following, run, top[5], rest))
    return Admitted(starts, tokens, short)


def _lead_order(v: tuple[str, float, int, float, str, float]) -> tuple[float, int, str]:
    """``VoteIndex.lead``'s order: the largest p, then the smallest depth, then session id."""
    return (-v[1], v[2], v[0])


def _warm_value(p: float, lead: float, depth: int, step: float, e: float) -> Value:
    """``frontier.value(p, lead, depth, step, e)`` (cold 0), the same operations in the same
    order with the zero cold start folded in (``lead - 0.0`` is ``lead``; ``0.0 + e`` is kept:
    it turns -0.0 into 0.0)."""
    saved = lead
    if saved > e:
        saved = e
    if not saved > 0.0:
        saved = 0.0
    if depth >= 2:
        later = step if step < lead else lead
        if later > e:
            later = e
        if later > 0.0:
            saved -= (1.0 - p) * later
        if not saved > 0.0:
            saved = 0.0
    benefit = p * saved if saved > 0.0 else 0.0
    run = 0.0 + e
    if lead < run:
        run = lead if lead > 0.0 else 0.0
    load = 0.0 if run > 0.0 else run  # ``cold if cold < run else run``
    waste = (1.0 - p) * run + p * load
    nothing_wasted = math.inf if benefit > 0.0 else 0.0
    score = benefit / waste if waste > 0.0 else nothing_wasted
    return _new_value(Value, (benefit, waste, run, score))


_new_value = tuple.__new__  # ``Value(...)`` without its Python-level ``__new__``


def _reason(p: float, depth: int, v: Value, cold: bool) -> str:
    """``StartJob.reason`` of a speculative start (``plan_speculate._spec_start``'s text)."""
    return (
        f"spec p={p:.2f} d={depth} saves={v.benefit_s:.1f}s "
        f"waste={v.waste_gpu_s:.1f}gpu-s s/gpu={v.score:.2f}" + (" cold" if cold else "")
    )


def _indexed_start(
    key: Key, lead: tuple[str, float, int, float, str, float], run: tuple[float, int, float, float],
    v: Value, expected: float, reason: str, cold: bool,
) -> StartJob:  # fmt: skip
    """``plan_speculate._spec_start`` of the key's ``Candidate``, from what it is made of: the
    key, its lead vote (session and action), its run (P, depth) and value (warm, or
    ``revalue``'s)."""
    memory_id, parent_id, pose = key
    return new_start_job(
        memory_id, parent_id, pose, lead[4], "speculative", lead[0], run[0], run[1], expected,
        v.benefit_s, reason, None, v.charge_gpu_s, cold,
    )  # fmt: skip
