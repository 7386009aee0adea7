"""Migrations on a real PostgreSQL: declared schema, idempotence, forward-only checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from orchestrator.migrate import MigrationError, apply_migrations, discover

pytestmark = pytest.mark.integration


async def test_apply_twice_is_a_noop(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        first = await apply_migrations(conn)
        assert [m.version for m in first] == [m.version for m in discover()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"memories", "chunks", "sessions", "gpu_jobs", "chunk_requests"} <= tables
        schema_before = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema='public' ORDER BY 1, 2"
        )
        second = await apply_migrations(conn)
        assert second == []
        schema_after = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema='public' ORDER BY 1, 2"
        )
        assert schema_before == schema_after
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(first)
    finally:
        await conn.close()


async def test_chunk_key_is_unique_even_for_root(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        mem = uuid.uuid4()
        await conn.execute(
            "INSERT INTO memories (id, original_image_path, image_width, image_height) "
            "VALUES ($1, 'x', 1, 1)",
            mem,
        )
        insert = (
            "INSERT INTO chunks (id, memory_id, parent_chunk_id, chunk_index, pose, profile_key,"
            " profile) VALUES ($1, $2, NULL, 0, 'w-31', 'p', '{}')"
        )
        await conn.execute(insert, uuid.uuid4(), mem)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, uuid.uuid4(), mem)
    finally:
        await conn.close()


async def test_edited_migration_is_refused(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_one.sql").write_text("CREATE TABLE t_one (id int);")
    conn = await asyncpg.connect(database_url)
    try:
        assert len(await apply_migrations(conn, tmp_path)) == 1
        (tmp_path / "001_one.sql").write_text("CREATE TABLE t_one (id bigint);")
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await apply_migrations(conn, tmp_path)
    finally:
        await conn.close()


async def test_failed_migration_rolls_back(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE t_ok (id int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE t_bad (id int); SELECT nonsense();")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await apply_migrations(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('t_bad')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


def test_misnamed_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "one.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNN_lower_name"):
        discover(tmp_path)
