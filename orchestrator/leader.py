"""Scheduler election: one PostgreSQL advisory lock, held on a dedicated connection.

Exactly one process runs the scheduler (DESIGN.md, "Users, operators, replicas"): the one
whose session holds ``pg_advisory_lock(LEADER_KEY)``. PostgreSQL releases a session's lock the
moment the session ends, so when the leader dies (``kill -9``, a lost machine once TCP notices)
a standby polling ``pg_try_advisory_lock`` every ``poll_s`` seconds takes over; the failover
costs the backend's notice of the dead socket, at most one poll, and the new leader's recovery.

The lock needs a session-mode connection: through a transaction pooler (Supabase's port 6543)
the lock would belong to whichever server connection ran the statement. docs/deploy.md.

A leader that loses its lock connection must stop scheduling at once (another process may be
elected the next second): ``LeaderLock`` watches the connection and calls ``on_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from orchestrator.config import ClusterConfig, ConfigError
from orchestrator.queries import Conn, query

log = structlog.get_logger(__name__)

# Arbitrary constant below 2**31 (so pg_locks shows it as classid 0, objid LEADER_KEY): "REWI".
LEADER_KEY = 0x5245_5749


class StandbyStopped(RuntimeError):
    """A standby was asked to stop (SIGINT / SIGTERM) before it was elected."""


class LeaderLock:
    """The scheduler's advisory lock on its own connection. ``await acquire()``, ``close()``.

    Args:
        dsn: a session-mode PostgreSQL URL (direct, or Supabase's session pooler on 5432).
        poll_s: seconds between two tries of a standby.
        check_s: seconds between two checks of the leader's connection.
        on_lost: called (from the event loop) when a held lock's connection breaks.
        reacquire: after a loss, keep trying to take the lock again (role ``all``, whose
            embedded database may be restarted under it); otherwise the watch ends.
    """

    def __init__(
        self, dsn: str, *, poll_s: float = 0.5, check_s: float = 1.0,
        on_lost: Callable[[], None] | None = None, connect_timeout_s: float = 5.0,
        reacquire: bool = False,
    ) -> None:  # fmt: skip
        self.dsn, self.poll_s, self.check_s, self.reacquire = dsn, poll_s, check_s, reacquire
        self.on_lost, self.connect_timeout_s = on_lost, connect_timeout_s
        self.conn: asyncpg.Connection | None = None
        self.held = False
        self._watch: asyncio.Task[None] | None = None

    async def _try(self) -> bool:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout_s)
        return bool(await self.conn.fetchval(query("leader_try_lock"), LEADER_KEY))

    async def try_once(self) -> bool:
        """One try; True when this process is now the leader. Raises asyncpg / OSError."""
        got = await self._try()
        if got and not self.held:
            self.held = True
            self._watch = asyncio.create_task(self._watch_loop(), name="rewind-leader-watch")
        return got

    async def acquire(
        self, timeout_s: float | None = None, stop: asyncio.Event | None = None
    ) -> bool:
        """Wait until this process holds the lock (a standby waits here); False after
        ``timeout_s`` seconds without it, or once ``stop`` is set. Connection errors are
        retried every poll."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        waited = False
        while True:
            try:
                if await self.try_once():
                    log.info("scheduler_elected", waited=waited)
                    return True
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("leader_lock_retry", error=f"{type(exc).__name__}: {exc}")
                await self._drop()
            if not waited:
                log.info("scheduler_standby", poll_s=self.poll_s)
                waited = True
            if deadline is not None and loop.time() >= deadline:
                return False
            if stop is None:
                await asyncio.sleep(self.poll_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)
            if stop.is_set():
                return False

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            conn = self.conn
            try:
                if conn is None or conn.is_closed():
                    raise ConnectionError("leader connection closed")
                await conn.fetchval(query("db_ping"), timeout=max(self.check_s, 2.0))
            except Exception as exc:
                self.held = False
                log.error("scheduler_lock_lost", error=f"{type(exc).__name__}: {exc}")
                if self.on_lost is not None:
                    self.on_lost()
                if not self.reacquire:
                    return
                await self._drop()
                while not self.held:
                    await asyncio.sleep(self.poll_s)
                    try:
                        self.held = await self._try()
                    except (OSError, asyncpg.PostgresError, TimeoutError):
                        await self._drop()
                log.info("scheduler_reelected")

    async def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.terminate()
        self.conn = None

    async def close(self) -> None:
        """Give the lock up (closing the session releases it)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.held = False
        if self.conn is not None and not self.conn.is_closed():
            try:
                await asyncio.wait_for(self.conn.close(), 5.0)
            except Exception:
                self.conn.terminate()
        self.conn = None


async def leader_present(conn: Conn) -> bool:
    """Whether any session holds the scheduler's lock (an API replica's check)."""
    return bool(await conn.fetchval(query("leader_present"), LEADER_KEY))


async def elect(dsn: str, cluster: ClusterConfig, connect_timeout_s: float = 5.0) -> LeaderLock:
    """The scheduler's leader lock for a process of role ``cluster.role``.

    Role ``scheduler`` waits for it as long as it takes (a standby; SIGINT / SIGTERM stop the
    wait). Role ``all`` waits at most 10 s (a predecessor killed a moment ago may hold it until
    PostgreSQL notices), then refuses to start: a second scheduler on one database would
    recover, and so interrupt, the first one's jobs.

    Raises:
        ConfigError: role ``all`` and another process holds the lock.
        StandbyStopped: a standby was stopped before it was elected.
    """

    def lost() -> None:
        # Another process may be elected within a poll: stop scheduling now, as a crash would
        # (no graceful end that could mark chunks another leader now generates). The next
        # leader recovers the work from the tables.
        log.error("scheduler_lock_lost_exiting")
        os._exit(70)

    standby = cluster.role == "scheduler"
    lock = LeaderLock(dsn, poll_s=cluster.leader_poll_s, on_lost=lost if standby else None,
                      connect_timeout_s=connect_timeout_s, reacquire=not standby)  # fmt: skip
    stop = asyncio.Event()
    restore = _while_standing_by(stop.set) if standby else (lambda: None)
    try:
        got = await lock.acquire(None if standby else 10.0, stop=stop)
    finally:
        restore()
    if got:
        return lock
    await lock.close()
    if standby:
        raise StandbyStopped("stopped while standing by (never elected)")
    raise ConfigError(
        "cannot start: another scheduler holds this database's leader lock; run this process "
        "as an API replica (--role api) or as a standby (--role scheduler)"
    )


def _while_standing_by(on_stop: Callable[[], None]) -> Callable[[], None]:
    """SIGINT / SIGTERM call ``on_stop`` while a standby waits to be elected (uvicorn's own
    handlers only act once start-up is over); returns what restores the previous handlers."""
    loop = asyncio.get_running_loop()
    saved: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_stop)
            saved[sig] = previous
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread: nothing to restore

    def restore() -> None:
        for sig, handler in saved.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)

    return restore
