"""Step e of ``plan()`` from the vote index: speculative starts straight from
``VoteIndex.walk``'s keys, without building a ``Candidate`` per key (pure).

Why (issue 10): in the simulator a plan's walk yielded ~14 candidates of which ~91 % the bucket
refused, and at 10^4 sessions a plan starts ~500 keys; a ``Candidate``, a second valuation and a
reason text per key were most of step e. Here a start is made from the key's lead vote and its
run's value, the reason text once per run, and a run whose keys would all be refused without
effect is dropped after its first key. The plan is the one ``plan._admit_speculation``'s loop
over ``VoteIndex.best_first`` gives (``tests/unit/core/test_plan.py`` checks both against the
plain algorithm).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple

from orchestrator.core.budget import cold_start_s
from orchestrator.core.build import new_start_job
from orchestrator.core.frontier import Value, value, warm_gpu_s
from orchestrator.core.tree import Key
from orchestrator.core.types import PlanInput, StartJob
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
    """Step e from the vote index: the loop of ``plan._admit_speculation`` over
    ``VoteIndex.walk``, which gives each key with its run's value: no ``Candidate`` is built,
    the start is made from the run's value and the key's lead vote (``_indexed_start``).

    Every key of a run has the same value and charge, so a run is dropped (its other keys
    skipped) as soon as one of its keys is refused for a reason that holds for all of them
    until the plan ends: its cold-start value does not clear the threshold (the cold start a
    start pays only grows within a plan: ``budget.cold_start_s``), or the bucket cannot pay
    its charge (the bucket only shrinks within the plan, and the refused charge is now
    ``bucket_short_gpu_s`` or above it; a cold charge is never below the warm one). A skipped
    key would have been refused with no effect, so the plan is the one the loop over every
    candidate gives.

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
    warm_idle, cold_s = inp.warm_idle, inp.timing.cold_start_s
    e = warm_gpu_s(inp)
    dropped: set[tuple[float, int, float, float]] = set()
    reasons: dict[tuple[tuple[float, int, float, float], float], str] = {}  # one per run
    lead_of = index.lead
    starts: list[StartJob] = []
    # Slots, room under the cap and the cold start change only when a key is started.
    cold = cold_start_s(warm_idle, before, cold_s)
    for key, run, v in index.walk(inp, e, taken, dropped):
        if free <= 0 or room <= 0:
            break
        lead = lead_of(key)
        sid = lead[0]
        mine = held.get(sid)
        if mine is None:
            mine = base.get(sid, 0)
        if mine >= limit:
            continue
        if cold > 0.0:
            p, depth, t, step = run
            # ``frontier.revalue``'s arithmetic (its lead: need_time - now, need = max(now, t))
            v = value(p, (t if t > now else now) - now, depth, step, e, cold)
            if not v.score > min_score:
                dropped.add(run)
                continue  # worth it on a warm container, not worth booting one
        charge = v.charge_gpu_s
        cost = charge if charge > 0.0 else 0.0  # ``budget.try_spend``, inlined
        if tokens < cost:
            if short is None or charge < short:
                short = charge
            dropped.add(run)
            continue  # a candidate with less lead time costs less: it may still fit
        tokens -= cost
        held[sid] = mine + 1
        reason = reasons.get((run, cold))
        if reason is None:
            reason = reasons[run, cold] = _reason(run[0], run[1], v, cold > 0.0)
        starts.append(_indexed_start(key, lead, run, v, e + cold, reason, cold > 0.0))
        free, room = free - 1, room - 1
        cold = cold_start_s(warm_idle, before + len(starts), cold_s)
    return Admitted(starts, tokens, short)


def _reason(p: float, depth: int, v: Value, cold: bool) -> str:
    """``StartJob.reason`` of a speculative start (``plan._spec_start``'s text)."""
    return (
        f"spec p={p:.2f} d={depth} saves={v.benefit_s:.1f}s "
        f"waste={v.waste_gpu_s:.1f}gpu-s s/gpu={v.score:.2f}" + (" cold" if cold else "")
    )


def _indexed_start(
    key: Key, lead: tuple[str, float, int, float, str, float], run: tuple[float, int, float, float],
    v: Value, expected: float, reason: str, cold: bool,
) -> StartJob:  # fmt: skip
    """``plan._spec_start`` of the key's ``Candidate``, from what it is made of: the key, its lead
    vote (session and action), its run (P, depth) and value (warm, or ``revalue``'s)."""
    memory_id, parent_id, pose = key
    return new_start_job(
        memory_id, parent_id, pose, lead[4], "speculative", lead[0], run[0], run[1], expected,
        v.benefit_s, reason, None, v.charge_gpu_s, cold,
    )  # fmt: skip
