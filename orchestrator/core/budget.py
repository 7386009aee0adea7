"""Speculation budget maths: a token bucket of wasted GPU-seconds and the slot cap; pure.

The bucket (``BucketState``) meters speculative *waste*: it refills at
``Budget.rate_gpu_s_per_s`` up to ``Budget.burst_gpu_s``; each speculative start pays up front
the GPU-seconds it will run before the viewer's choice reveals whether it was wanted
(``frontier.value``: ``min(C + E, lead)``, ~13 s in the A100 regime rather than the whole
~210 s generation). A correct guess is not waste (the chunk would have been generated on demand
anyway), so the live state refunds the whole charge when the chunk is requested; when the
planner cancels a speculative job (abandoned, idle, preempted or budget) the part of the charge
it did not run comes back (``unspent_gpu_s``, ``refund``). Demand jobs never pay: a viewer who
waits is always served (DESIGN.md, "The decision core"). Separately, speculative jobs may hold
at most ``speculative_slot_cap`` slots at once, so demand always finds room to preempt into.
"""

from __future__ import annotations

import math

from orchestrator.core.build import new_bucket
from orchestrator.core.types import BucketState, Budget
from orchestrator.core.warm import cold_start_of_next


def refill(bucket: BucketState, budget: Budget, now: float) -> BucketState:
    """The bucket as of ``now``: ``tokens + rate * (now - updated_at)``, clamped to [0, burst].

    Time never runs backwards: when ``now <= updated_at`` only the clamp applies and
    ``updated_at`` is kept. The clamp also repairs a bucket carried over from a larger burst (or
    a negative one), so the result always satisfies 0 <= tokens <= burst_gpu_s.

    Args:
        bucket: tokens (GPU-seconds) as of ``updated_at`` (seconds).
        budget: supplies rate_gpu_s_per_s and burst_gpu_s.
        now: current time (seconds).
    """
    # ``max(a, b)`` / ``min(a, b)`` written out (a unless b > a / b < a: NaN and -0.0 alike):
    # one refill per plan.
    burst, rate, updated = budget.burst_gpu_s, budget.rate_gpu_s_per_s, bucket.updated_at
    burst = burst if burst > 0.0 else 0.0
    elapsed = now - updated
    elapsed = elapsed if elapsed > 0.0 else 0.0
    tokens = bucket.tokens + (rate if rate > 0.0 else 0.0) * elapsed
    tokens = tokens if tokens > 0.0 else 0.0
    return new_bucket(tokens if tokens < burst else burst, updated if updated > now else now)


def try_spend(bucket: BucketState, cost: float) -> BucketState | None:
    """The bucket after paying ``cost`` GPU-seconds, or None when it holds fewer tokens.

    A negative cost is treated as 0 (spending never adds tokens). Call ``refill`` first.
    """
    cost = max(0.0, cost)
    if bucket.tokens < cost:
        return None
    return new_bucket(bucket.tokens - cost, bucket.updated_at)


def unspent_gpu_s(charged_gpu_s: float, started_at: float, now: float) -> float:
    """GPU-seconds of a charge that a job cancelled at ``now`` did not use.

    ``max(0, charged - (now - started_at))``, where the time run is taken as 0 when ``now`` is
    before ``started_at`` (a refund never exceeds the charge). A negative or non-finite charge,
    or a non-finite time run, gives 0: nothing is refunded that cannot have been paid.

    Example: charged 210 GPU-s, started at t=100, cancelled at t=113: 197 GPU-s unspent.
    """
    ran = now - started_at
    if not (math.isfinite(charged_gpu_s) and math.isfinite(ran)) or charged_gpu_s <= 0.0:
        return 0.0
    return max(0.0, charged_gpu_s - max(0.0, ran))


def refund(bucket: BucketState, budget: Budget, gpu_s: float) -> BucketState:
    """The bucket after ``gpu_s`` unspent GPU-seconds come back: ``min(burst, tokens + gpu_s)``.

    A negative or non-finite amount refunds nothing; the result keeps ``updated_at`` and never
    exceeds ``burst_gpu_s`` (a full bucket stays full: the refund is lost, as a refill would be).
    Call ``refill`` first, as for ``try_spend``.
    """
    if not math.isfinite(gpu_s) or gpu_s <= 0.0:
        return bucket
    burst = max(0.0, budget.burst_gpu_s)
    return new_bucket(min(burst, bucket.tokens + gpu_s), bucket.updated_at)


def speculative_slot_cap(budget: Budget) -> int:
    """Slots speculative jobs may hold at once: floor(speculative_share * max_containers).

    The share is clamped to [0, 1] and the result to >= 0.
    """
    # Asked once per plan, nearly always about the same (frozen) budget: the last answer is
    # kept with the budget it is for, compared by identity (one tuple, read and replaced
    # whole: a plan in another thread sees a consistent pair).
    global _last_cap
    last = _last_cap
    if last[0] is budget:
        return last[1]
    share = min(1.0, max(0.0, budget.speculative_share))
    # A tiny epsilon keeps 0.75 * 4 from flooring to 2 through float error.
    cap = max(0, math.floor(share * budget.max_containers + 1e-9))
    _last_cap = (budget, cap)
    return cap


_last_cap: tuple[Budget | None, int] = (None, 0)  # (budget, speculative_slot_cap(budget))


def cold_start_s(warm_idle: int | None, starting_before: int, cold_s: float) -> float:
    """Cold-start seconds the next start of a plan pays.

    ``warm_idle`` None (unknown / unlimited): 0, every start is warm. Otherwise the first
    ``warm_idle`` starts of the plan (``starting_before`` counts the ones before this one) land
    on idle warm containers (0 s) and later ones wait a container boot (``cold_s``, clamped to
    >= 0): ``warm.cold_start_of_next``.
    """
    return 0.0 if warm_idle is None else cold_start_of_next(warm_idle, starting_before, cold_s)
