"""G per profile: warm and cold-start times learned apart from finished generations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.gpu_time import ALPHA, GpuTimeEstimate, expected_times, observe


def test_priors_hold_until_a_sample() -> None:
    assert expected_times(None, prior_gpu_s=150.0, prior_cold_s=240.0) == (150.0, 240.0)
    empty = GpuTimeEstimate("k")
    assert expected_times(empty, prior_gpu_s=150.0, prior_cold_s=240.0) == (150.0, 240.0)


def test_cold_start_is_split_from_generation_time() -> None:
    est = observe(GpuTimeEstimate("k"), 342.0, cold_start=True, load_s=200.0)
    assert (est.warm_s, est.cold_extra_s, est.samples, est.cold_samples) == (142.0, 200.0, 1, 1)
    est = observe(est, 150.0)
    assert est.warm_s == pytest.approx((1 - ALPHA) * 142.0 + ALPHA * 150.0)
    assert est.cold_extra_s == 200.0
    assert expected_times(est, prior_gpu_s=1.0, prior_cold_s=1.0) == (est.warm_s, 200.0)


def test_bad_samples_are_ignored() -> None:
    est = GpuTimeEstimate("k")
    for bad in (-1.0, float("inf"), float("nan")):
        assert observe(est, bad) == est


@given(st.lists(st.floats(min_value=0.1, max_value=1e4), min_size=1, max_size=50))
def test_estimate_stays_within_the_samples(samples: list[float]) -> None:
    est = GpuTimeEstimate("k")
    for s in samples:
        est = observe(est, s)
    assert est.warm_s is not None
    assert min(samples) - 1e-6 <= est.warm_s <= max(samples) + 1e-6
