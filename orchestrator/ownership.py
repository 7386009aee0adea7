"""Who may see what: memory and session owners, read-only sharing, signed media URLs.

Rules (the same as the row-level security policies of ``migrations/005_ownership.sql``):

- a memory belongs to the user who created it (``memories.user_id``); its owner (or an
  operator) may read it and change it (share / unshare);
- a shared memory (``memories.shared``) may be read by any signed-in user, who may walk it in a
  session of their own (their chunks feed the memory's one shared chunk tree);
- a chunk is readable when its memory is;
- a session belongs to the user who opened it; only they (or an operator) may use it, read
  its journey, or move its cursor;
- anything the caller may not see answers exactly as an unknown id does (404, same body), so
  ids cannot be probed.

Owner and share flag of recently used memories, and owners of sessions, are kept in memory
(LRU, ``cache_size`` entries each; a memory's entry is re-read after ``ttl_s`` so an unshare on
another replica applies within that time), so an ownership check on the cache-hit path costs
no database round trip. ``MediaSigner`` makes the short-lived URLs that let ``<video>`` /
``<img>`` / ``<audio>`` elements, which cannot send an ``Authorization`` header, fetch blobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from orchestrator.auth import Principal
from orchestrator.errors import NotFound
from orchestrator.lru import Lru
from orchestrator.queries import Conn, query

Db: TypeAlias = "Conn | asyncpg.Pool"
"""A connection, or a pool that is asked for one only on a cache miss (the DB-free hit path)."""


async def _fetchrow(db: Db, name: str, *args: object) -> asyncpg.Record | None:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(query(name), *args)
            return row
    found: asyncpg.Record | None = await db.fetchrow(query(name), *args)
    return found


@dataclass(frozen=True, slots=True)
class MemoryAccess:
    """A memory's owner (None: created with auth off or by an operator) and share flag."""

    owner: uuid.UUID | None
    shared: bool


@dataclass(frozen=True, slots=True)
class SessionAccess:
    """A session's owner and memory."""

    owner: uuid.UUID | None
    memory_id: uuid.UUID


class Ownership:
    """The ownership checks of the module docstring, over an in-memory cache.

    Each check takes a connection or the pool (``Db``); given the pool it acquires a connection
    only when the cache does not know the id, so a cache-hit request can stay DB-free:
    ``await svc.gate.ownership.readable_memory(svc.db.pool, caller, memory_id)``.
    """

    def __init__(self, *, cache_size: int = 50_000, ttl_s: float = 30.0) -> None:
        self.memories: Lru[uuid.UUID, MemoryAccess] = Lru(cache_size, ttl_s)
        self.sessions: Lru[uuid.UUID, SessionAccess] = Lru(cache_size)  # owners never change

    def remember_memory(self, memory_id: uuid.UUID, owner: uuid.UUID | None, shared: bool) -> None:
        """Record a memory's access (on creation, share changes and reads of its row)."""
        self.memories.put(memory_id, MemoryAccess(owner, shared))

    def remember_session(
        self, session_id: uuid.UUID, owner: uuid.UUID | None, memory_id: uuid.UUID
    ) -> None:
        """Record a session's owner and memory (on creation and reads of its row)."""
        self.sessions.put(session_id, SessionAccess(owner, memory_id))

    async def memory_access(self, conn: Db, memory_id: uuid.UUID) -> MemoryAccess | None:
        """The memory's access from the cache, else from the database; None if unknown."""
        access = self.memories.get(memory_id)
        if access is None:
            row = await _fetchrow(conn, "memory_access", memory_id)
            if row is None:
                return None
            access = MemoryAccess(row["user_id"], row["shared"])
            self.memories.put(memory_id, access)
        return access

    async def readable_memory(
        self, conn: Db, principal: Principal, memory_id: uuid.UUID
    ) -> MemoryAccess:
        """Raises NotFound (as for an unknown id) unless ``principal`` may read the memory."""
        access = await self.memory_access(conn, memory_id)
        if access is None or not principal.can_read(access.owner, access.shared):
            raise NotFound(f"no memory {memory_id}", field="memory_id")
        return access

    async def owned_memory(
        self, conn: Db, principal: Principal, memory_id: uuid.UUID
    ) -> MemoryAccess:
        """Raises NotFound unless ``principal`` owns the memory (a viewer of a shared memory
        gets the same 404 as anyone else: sharing is read-only)."""
        access = await self.memory_access(conn, memory_id)
        if access is None or not principal.owns(access.owner):
            raise NotFound(f"no memory {memory_id}", field="memory_id")
        return access

    async def own_session(
        self, conn: Db, principal: Principal, session_id: uuid.UUID
    ) -> SessionAccess:
        """Raises NotFound (as for an unknown id) unless the session is ``principal``'s."""
        access = self.sessions.get(session_id)
        if access is None:
            row = await _fetchrow(conn, "session_access", session_id)
            if row is None:
                raise NotFound(f"no session {session_id}", field="session_id")
            access = SessionAccess(row["user_id"], row["memory_id"])
            self.sessions.put(session_id, access)
        if not principal.owns(access.owner):
            raise NotFound(f"no session {session_id}", field="session_id")
        return access


class MediaSigner:
    """HMAC-signed, expiring media URLs: ``<path>?sig=<exp>.<user>.<mac>``.

    ``mac`` is HMAC-SHA256 (base64url, 16 bytes kept) over ``path``, the expiry (unix seconds)
    and the user it was issued to, so a URL opens that one blob, for ``ttl_s`` seconds, and
    names whose request made it. ``secret`` None draws a random key per process (URLs then die
    with the process; set ``[auth] media_url_secret`` when several replicas serve the API).
    ``enabled`` False (auth off) leaves paths as they are.
    """

    def __init__(
        self,
        secret: bytes | None,
        ttl_s: int,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = secret or secrets.token_bytes(32)
        self.ttl_s, self.enabled, self._clock = ttl_s, enabled, clock

    def _mac(self, path: str, exp: int, user: str) -> str:
        msg = f"{path}\n{exp}\n{user}".encode()
        digest = hmac.new(self._key, msg, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, path: str, principal: Principal) -> str:
        """``path`` with a ``sig`` query parameter valid ``ttl_s`` seconds (unchanged if off)."""
        if not self.enabled:
            return path
        exp = int(self._clock()) + self.ttl_s
        user = principal.user_id.hex if principal.user_id is not None else "operator"
        return f"{path}?sig={exp}.{user}.{self._mac(path, exp, user)}"

    def verify(self, path: str, sig: str | None) -> bool:
        """True when ``sig`` was made by ``sign`` for this exact ``path`` and has not expired."""
        if not sig:
            return False
        exp_text, _, rest = sig.partition(".")
        user, _, mac = rest.partition(".")
        if not exp_text.isdigit() or not user or not mac:
            return False
        exp = int(exp_text)
        if exp < self._clock():
            return False
        return hmac.compare_digest(mac, self._mac(path, exp, user))
