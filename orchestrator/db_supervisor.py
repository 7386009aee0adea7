"""Database supervision: notice an outage, restart the embedded server, reconnect with back-off.

One task probes the pool (``sql/db_ping.sql``) every ``probe_interval_s`` seconds. When a probe
fails the database is marked unavailable; with the embedded server, a dead postmaster is started
again (``EmbeddedPostgres.restart``); with ``DATABASE_URL`` the probe is simply retried. Retries
back off exponentially from ``retry_initial_s`` to ``retry_max_s`` (doubling, no jitter: there is
one prober per process). asyncpg's pool replaces a closed connection on its next ``acquire``, so
once a probe succeeds every request works again; idle connections to the old server are expired
so none is handed out dead.

While the database is unavailable, requests that need it answer 503 ``database_unavailable``
with ``Retry-After`` (``orchestrator.errors.DatabaseUnavailable``); ``is_database_error`` says
which exceptions mean "the database is not there" rather than "this query is wrong".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import structlog

from orchestrator.errors import DatabaseUnavailable
from orchestrator.queries import query
from orchestrator.redact import redact_paths

if TYPE_CHECKING:
    from orchestrator.pg_embedded import EmbeddedPostgres

log = structlog.get_logger(__name__)

DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and "connection was closed"
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, crash, starting up
    asyncpg.exceptions.TooManyConnectionsError,
    OSError,  # refused, socket file gone, timeouts (TimeoutError is an OSError)
    asyncpg.InterfaceError,  # "connection is closed", "pool is closing"
    asyncpg.InternalClientError,  # a connection left mid-operation when its server died
)
"""Exceptions that may mean the database is unreachable."""

AMBIGUOUS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
"""Of those, the ones that may also have another cause (storage I/O, a misused connection):
they count as a database outage only when a fresh probe fails too."""


def is_database_error(exc: BaseException) -> bool:
    """True when ``exc`` may say the server is unreachable (see ``AMBIGUOUS``)."""
    return isinstance(exc, DB_ERRORS)


async def outage_error(
    supervisor: DatabaseSupervisor | None, exc: BaseException
) -> DatabaseUnavailable | None:
    """The 503 to answer for ``exc``, or None when the database is fine (another fault).

    An ambiguous error (``AMBIGUOUS``: OSError, asyncpg's interface errors) is the database's
    only when a fresh probe fails as well: storage and ffmpeg raise OSError too.
    """
    if not is_database_error(exc):
        return None
    ambiguous = isinstance(exc, AMBIGUOUS)
    if supervisor is None:
        return None if ambiguous else DatabaseUnavailable(1)
    if ambiguous and await supervisor.probe():
        return None
    supervisor.notice_failure(exc)
    return supervisor.unavailable()


@dataclass(frozen=True, slots=True)
class Supervision:
    """Probe and back-off settings (``[database]``), all in seconds."""

    probe_interval_s: float = 1.0
    probe_timeout_s: float = 2.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


class DatabaseSupervisor:
    """Watches one asyncpg pool (and the embedded server, if any) and heals it.

    ``available`` is False from the first failed probe (or ``notice_failure``) until a probe
    succeeds. ``retry_after_s`` is what a 503 tells the client: the current back-off, rounded
    up, at least 1 s.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedded: EmbeddedPostgres | None,
        supervision: Supervision,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.embedded = embedded
        self.cfg = supervision
        self.clock = clock
        self.available = True
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.outages = 0
        self.restarts = 0
        self._delay = supervision.retry_initial_s
        self._wake = asyncio.Event()
        self._up = asyncio.Event()
        self._up.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the probe loop (call from the event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="db-supervisor")

    async def close(self) -> None:
        """Stop the probe loop (a restart in progress finishes in its thread)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def retry_after_s(self) -> int:
        """Seconds a client should wait before retrying (>= 1)."""
        return max(1, math.ceil(self._delay))

    def notice_failure(self, exc: BaseException) -> None:
        """A request saw ``exc`` from the database: mark it down and probe now."""
        was_available = self.available
        self._mark_down(exc)
        if was_available:  # probe at once; later failures wait for the back-off
            self._wake.set()

    async def wait_available(self, timeout_s: float) -> bool:
        """Wait until the database answers again (at most ``timeout_s``); True if it does.

        For writers that must persist after an outage (resolve waiters first, then retry).
        """
        if self.available:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout_s)
        return self.available

    def unavailable(self) -> DatabaseUnavailable:
        """The 503 to raise while the database is down."""
        return DatabaseUnavailable(self.retry_after_s)

    def report(self) -> dict[str, object]:
        """JSON-ready state for /api/health (errors without server paths)."""
        out: dict[str, object] = {"outages": self.outages, "restarts": self.restarts}
        if not self.available and self.down_since is not None:
            out["down_for_s"] = round(self.clock() - self.down_since, 1)
            out["retry_after_s"] = self.retry_after_s
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out

    async def probe(self) -> bool:
        """One ``SELECT 1`` within ``probe_timeout_s``; True when the database answered."""
        timeout = self.cfg.probe_timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self.pool.acquire(timeout=timeout) as conn:
                    await conn.fetchval(query("db_ping"), timeout=timeout)
        except (Exception, TimeoutError) as exc:
            if self.pool.is_closing():
                return False
            self._mark_down(exc)
            return False
        if not self.available:
            await self._mark_up()
        return True

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = redact_paths(f"{type(exc).__name__}: {exc}")
        if self.available:
            self.available = False
            self._up.clear()
            self.down_since = self.clock()
            self.outages += 1
            log.error("database_unavailable", error=self.last_error)

    async def _mark_up(self) -> None:
        down_for = self.clock() - (self.down_since or self.clock())
        self.available = True
        self._up.set()
        self.down_since = None
        self._delay = self.cfg.retry_initial_s
        # Idle connections may still point at the old server process: replace them lazily.
        await self.pool.expire_connections()
        log.warning("database_recovered", down_for_s=round(down_for, 2), restarts=self.restarts)

    async def _heal(self) -> None:
        """Restart the embedded server when its postmaster is gone (external: nothing to do)."""
        if self.embedded is None or self.embedded.running():
            return
        try:
            await asyncio.to_thread(self.embedded.restart)
            self.restarts += 1
        except Exception as exc:  # still exiting, or pg_ctl failed: try again after back-off
            log.warning("embedded_postgres_restart_failed", error=redact_paths(str(exc)))

    async def _loop(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as exc:  # never let supervision die; it is what heals the rest
                log.error("db_supervisor_error", error=redact_paths(f"{type(exc).__name__}: {exc}"))
                await self._sleep(self.cfg.retry_max_s)

    async def _step(self) -> None:
        if await self.probe():
            await self._sleep(self.cfg.probe_interval_s)
            return
        await self._heal()
        if await self.probe():
            return
        await self._sleep(self._delay)
        self._delay = min(self._delay * 2, self.cfg.retry_max_s)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
