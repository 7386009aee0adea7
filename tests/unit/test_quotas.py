"""Per-user limits: the request token bucket, the speculation threshold, the daily reset."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from orchestrator.auth import Principal
from orchestrator.config import AuthConfig
from orchestrator.quotas import GpuUsage, RequestLimiter, TooManyRequests, speculation_allowed

ALICE = Principal(uuid.uuid4(), is_operator=False)
BOB = Principal(uuid.uuid4(), is_operator=False)


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_a_minute_then_429_with_retry_after() -> None:
    clock = Clock()
    limiter = RequestLimiter(6, clock=clock)  # one token per 10 s
    for _ in range(6):
        limiter.take(ALICE)
    with pytest.raises(TooManyRequests) as info:
        limiter.take(ALICE)
    assert info.value.status == 429 and info.value.headers["retry-after"] == "10"
    limiter.take(BOB)  # buckets are per user
    clock.t += 10
    limiter.take(ALICE)  # one token back after 10 s
    with pytest.raises(TooManyRequests):
        limiter.take(ALICE)
    for _ in range(100):
        limiter.take(Principal(None, is_operator=True))  # operators are not limited
    RequestLimiter(0, clock=clock).take(ALICE)  # 0 = off


def test_speculation_stops_before_demand() -> None:
    assert speculation_allowed(0, 100, 0.2)
    assert speculation_allowed(79.9, 100, 0.2)
    assert not speculation_allowed(80, 100, 0.2)
    assert speculation_allowed(10**9, 0, 0.2)  # no cap
    assert not speculation_allowed(0, 100, 1.0)  # everything reserved for demand


def test_gpu_cap_refuses_until_utc_midnight() -> None:
    noon = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    usage = GpuUsage(
        AuthConfig(gpu_seconds_per_day=100, speculation_reserve=0.25), clock=lambda: noon
    )
    usage._used = {ALICE.user_id: 80.0, BOB.user_id: 100.0}  # type: ignore[dict-item]
    session = uuid.uuid4()
    usage.note_session(session, ALICE.user_id)
    assert not usage.allow_speculation(ALICE.user_id)  # 80 >= 75: speculation stopped
    assert not usage.allow_speculation_for_session(str(session))
    assert usage.allow_speculation_for_session(uuid.uuid4())  # unknown session
    usage.check_demand(ALICE)  # demand still allowed below the cap
    with pytest.raises(TooManyRequests) as info:
        usage.check_demand(BOB)
    assert info.value.error == "gpu_quota_exceeded"
    assert info.value.headers["retry-after"] == str(12 * 3600)
    usage.check_demand(Principal(BOB.user_id, is_operator=True))
    off = GpuUsage(AuthConfig(gpu_seconds_per_day=100), enabled=False, clock=lambda: noon)
    off._used = dict(usage._used)
    off.check_demand(BOB)  # auth off: no cap
    assert off.allow_speculation(BOB.user_id)
