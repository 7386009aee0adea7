"""Token bucket and speculative slot cap (orchestrator.core.budget)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.budget import (
    cold_start_s,
    refill,
    refund,
    speculative_slot_cap,
    try_spend,
    unspent_gpu_s,
)
from orchestrator.core.types import BucketState, Budget

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
amounts = st.floats(min_value=0, max_value=1e5, allow_nan=False)
budgets = st.builds(
    Budget,
    max_containers=st.integers(0, 64),
    speculative_share=st.floats(0, 1),
    rate_gpu_s_per_s=st.floats(0, 100),
    burst_gpu_s=st.floats(0, 1e4),
)


def test_refill_adds_rate_times_elapsed() -> None:
    b = refill(BucketState(10.0, 100.0), Budget(rate_gpu_s_per_s=2.0, burst_gpu_s=100.0), 105.0)
    assert b == BucketState(20.0, 105.0)


def test_refill_caps_at_burst() -> None:
    b = refill(BucketState(90.0, 0.0), Budget(rate_gpu_s_per_s=2.0, burst_gpu_s=100.0), 50.0)
    assert b == BucketState(100.0, 50.0)


def test_refill_ignores_time_running_backwards() -> None:
    b = refill(BucketState(10.0, 100.0), Budget(rate_gpu_s_per_s=2.0, burst_gpu_s=100.0), 90.0)
    assert b == BucketState(10.0, 100.0)


def test_refill_repairs_bucket_above_a_lowered_burst() -> None:
    b = refill(BucketState(500.0, 0.0), Budget(burst_gpu_s=100.0), 0.0)
    assert b.tokens == 100.0


def test_try_spend() -> None:
    assert try_spend(BucketState(10.0, 3.0), 4.0) == BucketState(6.0, 3.0)
    assert try_spend(BucketState(10.0, 3.0), 10.0) == BucketState(0.0, 3.0)
    assert try_spend(BucketState(10.0, 3.0), 10.5) is None


def test_slot_cap() -> None:
    assert speculative_slot_cap(Budget(max_containers=4, speculative_share=0.75)) == 3
    assert speculative_slot_cap(Budget(max_containers=3, speculative_share=0.5)) == 1
    assert speculative_slot_cap(Budget(max_containers=10, speculative_share=0.3)) == 3
    assert speculative_slot_cap(Budget(max_containers=4, speculative_share=0.0)) == 0
    assert speculative_slot_cap(Budget(max_containers=4, speculative_share=1.0)) == 4


@given(budgets, st.floats(0, 1e4), times, times, times)
def test_refill_monotone_and_capped(
    budget: Budget, tokens: float, t0: float, t1: float, t2: float
) -> None:
    t1, t2 = sorted((t1, t2))
    start = BucketState(min(tokens, budget.burst_gpu_s), t0)
    a = refill(start, budget, t1)
    b = refill(a, budget, t2)
    assert 0 <= a.tokens <= budget.burst_gpu_s
    assert start.tokens <= a.tokens <= b.tokens <= budget.burst_gpu_s
    assert start.updated_at <= a.updated_at <= b.updated_at


@given(budgets, st.floats(-1e4, 1e5), times, times)
def test_refill_always_within_bounds(budget: Budget, tokens: float, t0: float, now: float) -> None:
    b = refill(BucketState(tokens, t0), budget, now)
    assert 0 <= b.tokens <= budget.burst_gpu_s
    assert b.updated_at == max(t0, now)


@given(amounts, amounts)
def test_try_spend_never_negative(tokens: float, cost: float) -> None:
    out = try_spend(BucketState(tokens, 0.0), cost)
    if out is None:
        assert cost > tokens
    else:
        assert out.tokens >= 0 and math.isclose(out.tokens, tokens - cost, abs_tol=1e-9)


@given(budgets)
def test_slot_cap_bounds(budget: Budget) -> None:
    cap = speculative_slot_cap(budget)
    assert 0 <= cap <= budget.max_containers
    assert cap <= budget.speculative_share * budget.max_containers + 1e-6


# ---- refunds of cancelled speculation ------------------------------------------------------


def test_unspent_is_the_charge_minus_the_time_run() -> None:
    # The A100 regime: charged E = 150 s warm + 60 s cold = 210 GPU-s, cancelled 13 s in.
    assert unspent_gpu_s(210.0, started_at=100.0, now=113.0) == 197.0
    assert unspent_gpu_s(10.0, started_at=0.0, now=4.0) == 6.0
    assert unspent_gpu_s(10.0, started_at=0.0, now=10.0) == 0.0
    assert unspent_gpu_s(10.0, started_at=0.0, now=15.0) == 0.0  # overran its estimate


def test_unspent_never_exceeds_the_charge() -> None:
    assert unspent_gpu_s(10.0, started_at=5.0, now=3.0) == 10.0  # clock skew: ran 0 s
    assert unspent_gpu_s(-4.0, started_at=0.0, now=1.0) == 0.0
    assert unspent_gpu_s(math.inf, started_at=0.0, now=1.0) == 0.0
    assert unspent_gpu_s(math.nan, started_at=0.0, now=1.0) == 0.0
    assert unspent_gpu_s(10.0, started_at=math.nan, now=1.0) == 0.0


def test_refund_adds_and_caps_at_burst() -> None:
    budget = Budget(burst_gpu_s=100.0)
    assert refund(BucketState(10.0, 7.0), budget, 30.0) == BucketState(40.0, 7.0)
    assert refund(BucketState(90.0, 7.0), budget, 30.0) == BucketState(100.0, 7.0)
    assert refund(BucketState(100.0, 7.0), budget, 197.0) == BucketState(100.0, 7.0)


def test_refund_of_nothing_changes_nothing() -> None:
    bucket, budget = BucketState(10.0, 7.0), Budget(burst_gpu_s=100.0)
    for amount in (0.0, -5.0, math.nan, math.inf):
        assert refund(bucket, budget, amount) == bucket


@given(budgets, st.floats(0, 1e4), st.floats(-1e4, 1e5), times, times)
def test_refund_keeps_the_bucket_within_bounds(
    budget: Budget, tokens: float, charged: float, started: float, now: float
) -> None:
    before = refill(BucketState(tokens, 0.0), budget, 0.0)  # within [0, burst]
    unspent = unspent_gpu_s(charged, started, now)
    assert 0.0 <= unspent <= max(0.0, charged)
    after = refund(before, budget, unspent)
    assert before.tokens <= after.tokens <= budget.burst_gpu_s
    assert after.updated_at == before.updated_at


@given(st.one_of(st.none(), st.integers(-2, 6)), st.integers(0, 10), st.floats(-10, 400))
def test_cold_start_only_beyond_the_warm_idle_containers(
    warm_idle: int | None, before: int, cold: float
) -> None:
    paid = cold_start_s(warm_idle, before, cold)
    if warm_idle is None or before < max(0, warm_idle):
        assert paid == 0.0  # unknown warmth: every start warm; else the idle ones go first
    else:
        assert paid == max(0.0, cold)


_any_float = st.floats() | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan])


@given(burst=_any_float, rate=_any_float, tokens=_any_float, updated=_any_float, now=_any_float)
def test_refill_is_the_min_max_formula(
    burst: float, rate: float, tokens: float, updated: float, now: float
) -> None:
    """``refill``'s written-out comparisons give what the ``min``/``max`` formula gives, bit for
    bit (NaN, infinities and signed zeros included)."""
    budget = Budget(burst_gpu_s=burst, rate_gpu_s_per_s=rate)
    got = refill(BucketState(tokens, updated), budget, now)
    t = tokens + max(0.0, rate) * max(0.0, now - updated)
    want = (min(max(0.0, burst), max(0.0, t)), max(now, updated))
    assert repr((got.tokens, got.updated_at)) == repr(want)


@given(
    shares=st.lists(st.floats(-1.0, 2.0), min_size=1, max_size=4),
    sizes=st.lists(st.integers(0, 50), min_size=1, max_size=4),
)
def test_slot_cap_of_budgets_in_turn_is_the_formula(shares: list[float], sizes: list[int]) -> None:
    """The kept last answer never leaks into another budget's (equal budgets, distinct objects,
    asked in turn)."""
    budgets = [Budget(speculative_share=s, max_containers=n) for s in shares for n in sizes]
    for b in [*budgets, *reversed(budgets), *budgets]:
        share = min(1.0, max(0.0, b.speculative_share))
        assert speculative_slot_cap(b) == max(0, math.floor(share * b.max_containers + 1e-9))
