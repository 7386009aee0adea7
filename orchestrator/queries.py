"""Named SQL queries: one ``orchestrator/sql/<name>.sql`` file each, with ``$n`` parameters.

SQL never lives in Python strings; this module only loads and caches the files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A plain or pooled asyncpg connection: both run the same queries."""

SQL_DIR = Path(__file__).resolve().parent / "sql"


@cache
def query(name: str) -> str:
    """The text of ``sql/<name>.sql``.

    Raises:
        FileNotFoundError: no such query file (a programming error).
    """
    path = SQL_DIR / f"{name}.sql"
    return path.read_text()
