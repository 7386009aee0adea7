"""The warm-container count: idle warm time against cold starts, from predicted demand."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.types import SessionView, Timing
from orchestrator.core.warm import WarmDemand, desired_warm, predicted_rate, session_next_requests


def demand(**kw: float) -> WarmDemand:
    base: dict[str, float] = {"rate_per_s": 0.02, "gpu_s": 150.0, "cold_start_s": 240.0,
                              "horizon_s": 300.0, "max_containers": 4}  # fmt: skip
    return WarmDemand(**{**base, **kw})  # type: ignore[arg-type]


def test_no_demand_scales_to_zero() -> None:
    assert desired_warm(demand(rate_per_s=0.0)) == 0  # sessions ended
    assert desired_warm(demand(cold_start_s=0.0)) == 0  # nothing to avoid
    assert desired_warm(demand(busy=4)) == 0  # every container is busy, none idle


def test_busy_viewers_keep_containers_warm() -> None:
    # 0.02 req/s x 150 s = 3 containers busy on average: warm ones pay for themselves.
    assert desired_warm(demand()) >= 2
    # One request an hour: a warm container idles 300 s for a rare 240 s cold start.
    assert desired_warm(demand(rate_per_s=1 / 3600)) == 0


def test_longer_cold_starts_warm_more() -> None:
    light = demand(rate_per_s=0.002)
    assert desired_warm(light) <= desired_warm(demand(rate_per_s=0.002, cold_start_s=900.0))


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=1.0, max_value=600.0),
    st.floats(min_value=0.0, max_value=900.0),
    st.integers(min_value=0, max_value=8),
    st.integers(min_value=1, max_value=8),
)
def test_bounds(rate: float, gpu_s: float, cold: float, busy: int, cap: int) -> None:
    d = WarmDemand(rate, gpu_s, cold, 300.0, busy=busy, max_containers=cap)
    warm = desired_warm(d)
    assert 0 <= warm <= max(0, cap - busy)
    more = WarmDemand(rate * 2, gpu_s, cold, 300.0, busy=busy, max_containers=cap)
    assert desired_warm(more) >= warm  # more predicted demand never warms fewer


def test_predicted_rate() -> None:
    assert predicted_rate([(1.0, 10.0), (0.5, 5.0), (0.0, 1.0)]) == 0.2
    assert predicted_rate([(1.0, 0.0)]) == 1.0  # due now: counted over one second


def test_only_starts_beyond_the_idle_warm_containers_pay_a_cold_start() -> None:
    from orchestrator.core.warm import cold_start_of_next

    assert [cold_start_of_next(2, n, 240.0) for n in range(4)] == [0.0, 0.0, 240.0, 240.0]
    assert cold_start_of_next(0, 0, 240.0) == 240.0


@given(st.lists(st.floats(min_value=0.0, max_value=500.0), max_size=20),
       st.floats(min_value=1.0, max_value=300.0))  # fmt: skip
def test_sessions_fade_out_as_they_fall_silent(silences: list[float], timeout: float) -> None:
    timing = Timing(gpu_s_per_chunk=150.0, chunk_duration_s=5.0, think_s=2.0)
    now = 1000.0
    views = [SessionView(f"s{i}", "m", "c", now - s, now - s) for i, s in enumerate(silences)]
    got = session_next_requests(views, timing, now, timeout)
    assert len(got) == sum(1 for v in views if now - v.last_active_at < timeout)  # silent: 0
    assert all(0.0 < p <= 1.0 and gap == 7.0 for p, gap in got)
    rate = predicted_rate(got)
    assert rate <= len(silences) / 7.0 + 1e-9
    fresher = [SessionView(v.session_id, "m", "c", now, now) for v in views]
    assert predicted_rate(session_next_requests(fresher, timing, now, timeout)) >= rate - 1e-9
