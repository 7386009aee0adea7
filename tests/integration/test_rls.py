"""Row-level security of migration 005 on a real PostgreSQL, with a stand-in of Supabase's
``auth`` schema: ``auth.users``, ``auth.uid()`` reading the ``request.jwt.claims`` setting (as
PostgREST sets it per request and Supabase's own function reads it), and the roles ``anon``,
``authenticated`` and ``service_role`` (the last with BYPASSRLS, as on Supabase).

A second user's rows must be invisible (and unchangeable) through SQL too, not only through the
API; a shared memory readable but not writable; anon sees nothing; service_role everything.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from orchestrator.migrate import apply_migrations

pytestmark = pytest.mark.integration

# Supabase's definition of auth.uid() (supabase/auth migrations), verbatim in behaviour.
STAND_IN_AUTH = """
DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN BYPASSRLS;
     EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE SCHEMA auth;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated, service_role;
"""
# What Supabase's default privileges give the API roles on tables in public.
SUPABASE_GRANTS = """
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
"""

TABLES = ["memories", "chunks", "sessions", "gpu_jobs", "chunk_requests", "memory_costs"]


class World:
    """Two users, each with a memory (chunk, session, job, request, cost), B's second shared."""

    def __init__(self) -> None:
        self.alice, self.bob = uuid.uuid4(), uuid.uuid4()
        self.m_alice, self.m_bob, self.m_shared = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.chunk: dict[uuid.UUID, uuid.UUID] = {}
        self.session: dict[uuid.UUID, uuid.UUID] = {}

    async def insert(self, conn: asyncpg.Connection[Any]) -> None:
        await conn.executemany(
            "INSERT INTO auth.users (id, email) VALUES ($1, $2)",
            [(self.alice, "alice@example.com"), (self.bob, "bob@example.com")],
        )
        for memory, owner, shared in [
            (self.m_alice, self.alice, False),
            (self.m_bob, self.bob, False),
            (self.m_shared, self.bob, True),
        ]:
            await conn.execute(
                "INSERT INTO memories (id, user_id, shared, original_image_path, image_width,"
                " image_height) VALUES ($1, $2, $3, 'x.png', 8, 8)",
                memory, owner, shared,
            )  # fmt: skip
            chunk, session, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            self.chunk[memory], self.session[memory] = chunk, session
            await conn.execute(
                "INSERT INTO chunks (id, memory_id, chunk_index, pose, profile_key, profile)"
                " VALUES ($1, $2, 0, 'w-31', 'p', '{}')",
                chunk, memory,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO sessions (id, memory_id, user_id, cursor_chunk_id)"
                " VALUES ($1, $2, $3, $4)",
                session, memory, owner, chunk,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO gpu_jobs (id, chunk_id, memory_id, session_id, kind, initial_kind,"
                " status, backend, gpu_seconds)"
                " VALUES ($1, $2, $3, $4, 'demand', 'demand', 'succeeded', 'local', 3)",
                job, chunk, memory, session,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO chunk_requests (id, session_id, memory_id, chunk_id, job_id, pose,"
                " outcome) VALUES ($1, $2, $3, $4, $5, 'w-31', 'miss')",
                uuid.uuid4(), session, memory, chunk, job,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO memory_costs (memory_id, kind, backend, units, quantity, usd)"
                " VALUES ($1, 'llm', 'claude', 'tokens', 10, 0.01)",
                memory,
            )


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    c = await asyncpg.connect(database_url)
    try:
        await c.execute(STAND_IN_AUTH)
        await apply_migrations(c)
        await c.execute(SUPABASE_GRANTS)
        yield c
    finally:
        await c.close()


async def as_role(
    conn: asyncpg.Connection[Any], role: str, user: uuid.UUID | None, sql: str, *args: Any
) -> list[asyncpg.Record]:
    """Run ``sql`` as PostgREST would for a request: role switched, JWT claims set."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")  # a role name cannot be a $n parameter
        claims = {"role": role, **({"sub": str(user)} if user else {})}
        await conn.execute("SELECT set_config('request.jwt.claims', $1, true)", json.dumps(claims))
        return await conn.fetch(sql, *args)


async def ids(
    conn: asyncpg.Connection[Any], role: str, user: uuid.UUID | None, table: str
) -> set[Any]:
    column = "memory_id" if table != "memories" else "id"
    rows = await as_role(conn, role, user, f"SELECT {column} AS m FROM {table}")
    return {r["m"] for r in rows}


async def test_a_second_users_rows_are_invisible(conn: asyncpg.Connection[Any]) -> None:
    w = World()
    await w.insert(conn)
    everything = {w.m_alice, w.m_bob, w.m_shared}
    # Alice: her own rows, plus Bob's shared memory and its chunks (read-only sharing).
    assert await ids(conn, "authenticated", w.alice, "memories") == {w.m_alice, w.m_shared}
    assert await ids(conn, "authenticated", w.alice, "chunks") == {w.m_alice, w.m_shared}
    for table in ["sessions", "gpu_jobs", "chunk_requests", "memory_costs"]:
        assert await ids(conn, "authenticated", w.alice, table) == {w.m_alice}, table
    for view in ["v_requests", "v_jobs"]:  # views do not read past RLS
        assert await ids(conn, "authenticated", w.alice, view) == {w.m_alice}, view
    costs = await as_role(
        conn, "authenticated", w.alice, "SELECT memory_id, gpu_seconds, llm_usd FROM v_memory_costs"
    )
    assert {r["memory_id"]: (r["gpu_seconds"], r["llm_usd"]) for r in costs} == {
        w.m_alice: (3.0, 0.01),
        w.m_shared: (0.0, 0.0),  # a shared memory is readable; what Bob spent on it is not
    }
    # Bob: his two memories, none of Alice's.
    assert await ids(conn, "authenticated", w.bob, "memories") == {w.m_bob, w.m_shared}
    assert await ids(conn, "authenticated", w.bob, "sessions") == {w.m_bob, w.m_shared}
    # anon (the project's public key) and a token without sub see nothing at all.
    for table in TABLES:
        assert await ids(conn, "anon", None, table) == set(), table
        assert await ids(conn, "authenticated", None, table) == set(), table
    assert await as_role(conn, "authenticated", w.alice, "SELECT * FROM schema_migrations") == []
    # service_role bypasses RLS; so does the table owner the service connects as.
    for table in TABLES:
        assert await ids(conn, "service_role", None, table) == everything, table
    assert {r["id"] for r in await conn.fetch("SELECT id FROM memories")} == everything


async def test_writes_follow_the_owner(conn: asyncpg.Connection[Any]) -> None:
    w = World()
    await w.insert(conn)
    update = "UPDATE memories SET prompt = 'mine now' WHERE id = $1 RETURNING id"
    assert await as_role(conn, "authenticated", w.alice, update, w.m_bob) == []
    assert await as_role(conn, "authenticated", w.alice, update, w.m_shared) == []  # read-only
    assert len(await as_role(conn, "authenticated", w.alice, update, w.m_alice)) == 1
    give_away = "UPDATE memories SET user_id = $2 WHERE id = $1"
    with pytest.raises(asyncpg.PostgresError, match="row-level security"):
        await as_role(conn, "authenticated", w.alice, give_away, w.m_alice, w.bob)
    steal = (
        "INSERT INTO memories (id, user_id, original_image_path, image_width, image_height)"
        " VALUES ($1, $2, 'y.png', 8, 8)"
    )
    with pytest.raises(asyncpg.PostgresError, match="row-level security"):
        await as_role(conn, "authenticated", w.alice, steal, uuid.uuid4(), w.bob)
    session = "INSERT INTO sessions (id, memory_id, user_id) VALUES ($1, $2, $3)"
    with pytest.raises(asyncpg.PostgresError, match="row-level security"):  # not shared with her
        await as_role(conn, "authenticated", w.alice, session, uuid.uuid4(), w.m_bob, w.alice)
    # Her own session on Bob's shared memory is allowed (viewers walk in sessions of their own).
    await as_role(conn, "authenticated", w.alice, session, uuid.uuid4(), w.m_shared, w.alice)
    hijack = "UPDATE sessions SET cursor_chunk_id = NULL WHERE id = $1 RETURNING id"
    assert await as_role(conn, "authenticated", w.alice, hijack, w.session[w.m_shared]) == []
    delete = "DELETE FROM chunks WHERE memory_id = $1 RETURNING id"
    assert await as_role(conn, "authenticated", w.alice, delete, w.m_alice) == []  # service's
    delete = "DELETE FROM memories WHERE id = $1 RETURNING id"
    assert await as_role(conn, "authenticated", w.alice, delete, w.m_bob) == []


async def test_owner_is_a_real_auth_user(conn: asyncpg.Connection[Any]) -> None:
    insert = (
        "INSERT INTO memories (id, user_id, original_image_path, image_width, image_height)"
        " VALUES ($1, $2, 'z.png', 8, 8)"
    )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(insert, uuid.uuid4(), uuid.uuid4())
    await conn.execute(insert, uuid.uuid4(), None)  # no owner (auth off) stays possible


async def test_without_an_auth_schema_rls_is_on_with_no_user_policy(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)  # the embedded default: no auth schema at all
        rows = await conn.fetch(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = 'public'::regnamespace"
        )
        assert rows and all(r["relrowsecurity"] for r in rows), rows
        assert {r["relname"] for r in rows} >= {*TABLES, "schema_migrations"}
        assert await conn.fetchval("SELECT count(*) FROM pg_policies") == 0
        fks = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conname IN"
            " ('memories_user_fk', 'sessions_user_fk')"
        )
        assert fks == 0
    finally:
        await conn.close()
