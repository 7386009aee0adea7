"""Per-user limits: requests per minute and GPU-seconds per UTC day (``[auth]``).

- **Requests**: a token bucket per user, ``requests_per_minute`` tokens of capacity, refilled
  at ``requests_per_minute / 60`` per second; an empty bucket is a 429 whose ``Retry-After``
  is the whole seconds until one token is back. In memory, per process (with several API
  replicas each enforces the limit on its own share of the traffic).
- **GPU-seconds**: a user's usage is the GPU-seconds of the ``gpu_jobs`` rows finished since
  00:00 UTC whose session is theirs (a demand job carries the requesting session, a speculative
  one the session it serves), or, without a session, whose memory is theirs (SQL:
  ``sql/usage_gpu_today.sql``). The totals are read from the database at most every
  ``usage_refresh_s`` seconds, in the background once a first read exists, so checking them
  never adds a query to a request. At ``gpu_seconds_per_day`` a request that could generate is
  a 429 (``Retry-After``: seconds until the next UTC midnight); speculation for the user stops
  earlier, at ``(1 - speculation_reserve)`` of the cap (see ``speculation_allowed``), so demand
  is the last thing a user near the cap loses.

Operators (and the local user of mode none, who is one) are not limited.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import structlog

from orchestrator.auth import Principal
from orchestrator.config import AuthConfig
from orchestrator.errors import ApiError
from orchestrator.queries import query

log = structlog.get_logger(__name__)

_MAX_SESSIONS = 100_000
"""Session -> user entries kept for ``allow_speculation_for_session`` (LRU)."""


class TooManyRequests(ApiError):
    """429 with ``Retry-After`` (whole seconds, RFC 9110 section 10.2.3)."""

    def __init__(self, error: str, detail: str, retry_after_s: float) -> None:
        seconds = max(1, math.ceil(retry_after_s))
        super().__init__(
            429, error, f"{detail}; retry in {seconds} s", headers={"retry-after": str(seconds)}
        )
        self.retry_after_s = seconds


def speculation_allowed(used_gpu_s: float, cap_gpu_s: float, reserve: float) -> bool:
    """May the scheduler still speculate for a user who used ``used_gpu_s`` today?

    True when there is no cap (``cap_gpu_s`` 0) or usage is below ``(1 - reserve) x cap``: the
    last ``reserve`` share of the day's GPU-seconds is kept for the user's own demand requests.
    Pure: no clock, no I/O.
    """
    return cap_gpu_s <= 0 or used_gpu_s < (1.0 - reserve) * cap_gpu_s


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RequestLimiter:
    """Token buckets of ``per_minute`` requests per user (0 = no limit). ``clock``: seconds."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[uuid.UUID | None, _Bucket] = {}

    def take(self, principal: Principal) -> None:
        """Spend one request of ``principal``'s bucket. Raises TooManyRequests when empty."""
        if self.per_minute <= 0 or principal.is_operator:
            return
        now, rate = self._clock(), self.per_minute / 60.0
        b = self._buckets.get(principal.user_id)
        if b is None:
            b = self._buckets[principal.user_id] = _Bucket(float(self.per_minute), now)
        b.tokens = min(float(self.per_minute), b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens < 1.0:
            raise TooManyRequests(
                "rate_limited",
                f"more than {self.per_minute} requests per minute from this user",
                (1.0 - b.tokens) / rate,
            )
        b.tokens -= 1.0
        if len(self._buckets) > _MAX_SESSIONS:  # a bucket refilled by now carries no state
            full = float(self.per_minute)
            self._buckets = {
                k: v for k, v in self._buckets.items() if v.tokens + (now - v.at) * rate < full
            }


class GpuUsage:
    """Today's GPU-seconds per user, read behind from the database (module docstring)."""

    def __init__(
        self, config: AuthConfig, *, enabled: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        # Auth off: the one local user is the operator, so no cap applies and nothing is read.
        self.enabled = enabled
        self.cap_s = config.gpu_seconds_per_day if enabled else 0.0
        self.reserve = config.speculation_reserve
        self.refresh_s = config.usage_refresh_s
        self._clock = clock
        self._used: dict[uuid.UUID, float] = {}
        self._read_at = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._session_user: OrderedDict[str, uuid.UUID | None] = OrderedDict()

    def used(self, user_id: uuid.UUID | None) -> float:
        """GPU-seconds ``user_id`` used today, as of the last read (0 when unknown)."""
        return self._used.get(user_id, 0.0) if user_id is not None else 0.0

    def allow_speculation(self, user_id: uuid.UUID | None) -> bool:
        """``speculation_allowed`` for ``user_id``'s usage (None, an operator: always True)."""
        return user_id is None or speculation_allowed(self.used(user_id), self.cap_s, self.reserve)

    def allow_speculation_for_session(self, session_id: str | uuid.UUID) -> bool:
        """``allow_speculation`` for the user of a session the API has seen (unknown: True).

        For the scheduler's planning loop: a dict lookup, no I/O.
        """
        return self.allow_speculation(self._session_user.get(str(session_id)))

    def note_session(self, session_id: uuid.UUID, user_id: uuid.UUID | None) -> None:
        """Remember whose a session is (called when the API creates or checks one)."""
        key = str(session_id)
        self._session_user[key] = user_id
        self._session_user.move_to_end(key)
        while len(self._session_user) > _MAX_SESSIONS:
            self._session_user.popitem(last=False)

    def check_demand(self, principal: Principal) -> None:
        """Refuse a request that may generate once the user's daily cap is spent.

        Raises:
            TooManyRequests: usage >= ``gpu_seconds_per_day``; Retry-After runs to 00:00 UTC.
        """
        if self.cap_s <= 0 or principal.is_operator:
            return
        used = self.used(principal.user_id)
        if used >= self.cap_s:
            raise TooManyRequests(
                "gpu_quota_exceeded",
                f"this user has used {used:.0f} of {self.cap_s:.0f} GPU-seconds today (UTC)",
                _seconds_to_midnight(self._clock()),
            )

    async def fresh(self, pool: asyncpg.Pool) -> None:
        """Make sure a read exists; start a background re-read when the last is stale."""
        if self.cap_s <= 0:
            return
        now = self._clock()
        if self._read_at == -math.inf:
            await self.refresh(pool)
        elif now - self._read_at > self.refresh_s and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self.refresh(pool), name="rewind-gpu-usage")

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Re-read today's totals (a failure is logged and the previous totals kept)."""
        now = self._clock()
        day_start = dt.datetime.fromtimestamp(now, dt.UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(query("usage_gpu_today"), day_start)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("gpu_usage_read_failed", error=str(exc))
            return
        self._used = {r["user_id"]: float(r["gpu_seconds"]) for r in rows}
        self._read_at = now

    def limits(self) -> dict[str, object]:
        """The limits as /api/admin/config shows them."""
        return {
            "enforced": self.enabled and self.cap_s > 0,
            "gpu_seconds_per_day": self.cap_s,
            "speculation_stops_at_gpu_s": (1.0 - self.reserve) * self.cap_s if self.cap_s else None,
            "users_over_speculation_threshold": sum(
                1 for u in self._used if not self.allow_speculation(u)
            ),
        }


def _seconds_to_midnight(now: float) -> float:
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    midnight = (t + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - t).total_seconds()
