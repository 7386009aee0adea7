"""Ownership checks against a real PostgreSQL: misses read the row once, hits never touch it."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from orchestrator.auth import Principal
from orchestrator.errors import NotFound
from orchestrator.migrate import apply_migrations
from orchestrator.ownership import Ownership

pytestmark = pytest.mark.integration


async def test_cache_hits_need_no_connection(database_url: str) -> None:
    owner, other = Principal(uuid.uuid4(), False), Principal(uuid.uuid4(), False)
    memory, session = uuid.uuid4(), uuid.uuid4()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn)
            await conn.execute(
                "INSERT INTO memories (id, user_id, original_image_path, image_width,"
                " image_height) VALUES ($1, $2, 'x.png', 8, 8)",
                memory, owner.user_id,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO sessions (id, memory_id, user_id) VALUES ($1, $2, $3)",
                session, memory, owner.user_id,
            )  # fmt: skip
        own = Ownership()
        # Misses: read from the database through the pool.
        assert (await own.readable_memory(pool, owner, memory)).owner == owner.user_id
        assert (await own.own_session(pool, owner, session)).memory_id == memory
        with pytest.raises(NotFound) as theirs:
            await own.readable_memory(pool, other, memory)
        with pytest.raises(NotFound) as unknown:
            await own.readable_memory(pool, other, uuid.UUID(int=7))
        assert theirs.value.to_json()["error"] == unknown.value.to_json()["error"]
        with pytest.raises(NotFound):
            await own.own_session(pool, other, session)
    finally:
        await pool.close()
    # Hits: the pool is closed, so any acquire would raise; the cached answers still come.
    assert (await own.readable_memory(pool, owner, memory)).shared is False
    assert (await own.own_session(pool, owner, session)).owner == owner.user_id
    with pytest.raises(NotFound):
        await own.readable_memory(pool, other, memory)
    with pytest.raises(asyncpg.InterfaceError):  # a miss does need the database
        await own.readable_memory(pool, owner, uuid.uuid4())
