"""Run-once claims: a generation job runs on Modal at most once, whatever the client saw.

A spawn whose submission timed out on the client may still have reached Modal; spawning again
would pay for two runs, not spawning would lose the job if it had not. The claim makes both
safe. Before any GPU work ``WorldPlay.generate`` claims its ``job_id`` in a Modal Dict
(``put(job_id, call_id, skip_if_exists=True)``, atomic on Modal's side):

- it owns the claim (or a Modal retry of the same call finds its own id): it runs;
- another call owns it: it returns ``{"duplicate_of": owner}`` at once and the client adopts
  ``FunctionCall.from_id(owner)``;
- the client cancelled the job before any call claimed it (``CANCELLED``): it returns
  ``{"cancelled": True}`` at once.

So the client, after a submission timeout, looks the job up (``owner``): found, it adopts the
call; not found, it spawns again. A job abandoned before its id was known is ``cancel``-led:
either nothing has claimed it yet (the claim now blocks any late start) or its owner is returned
for the caller to cancel. Claims are never released: every attempt has its own ``job_id``
(``gpu_jobs`` row), and Modal expires Dict entries after 7 days without an update.

Under ``.local()`` (tests, no credentials) ``MemoryClaims`` stands in for the Dict with the same
semantics; the claim code path in the container is the same.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

CLAIMS_DICT = "rewind-worldplay-claims"
CANCELLED = "cancelled"


class ClaimStore(Protocol):
    """The container side: claim ``job_id`` for ``call_id``; return the owner after the call."""

    def claim(self, job_id: str, call_id: str) -> str:
        """The call id (or ``CANCELLED``) that owns ``job_id`` once this call returns."""
        ...


class MemoryClaims:
    """In-process claims (``.local()`` runs): a dict under a lock, put-if-absent semantics."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, job_id: str, call_id: str) -> str:
        with self._lock:
            return self._owners.setdefault(job_id, call_id)

    def cancel(self, job_id: str) -> str:
        """Block ``job_id``; the owner when a call already claimed it, else ``CANCELLED``."""
        return self.claim(job_id, CANCELLED)


class DictClaims:
    """Claims in a ``modal.Dict`` (inside the Modal container; blocking calls).

    ``put(..., skip_if_exists=True)`` returns False when the key exists (modal 1.6
    ``Dict.put``); the owner is then read back.
    """

    def __init__(self, store: Any) -> None:
        self._store = store

    def claim(self, job_id: str, call_id: str) -> str:
        if self._store.put(job_id, call_id, skip_if_exists=True):
            return call_id
        owner: str | None = self._store.get(job_id)
        return owner or call_id  # vanished in between (expired): this call goes ahead


class ClaimsClient:
    """The orchestrator side, over the same Dict (``modal.Dict.from_name(CLAIMS_DICT)``).

    Every method waits at most ``timeout_s`` and answers None when Modal does not answer: a
    missing answer is treated as "unknown", never as "not started".
    """

    def __init__(self, store: Any, timeout_s: float = 15.0) -> None:
        self._store = store
        self.timeout_s = timeout_s

    async def owner(self, job_id: str) -> str | None:
        """The call id that claimed ``job_id`` (or ``CANCELLED``), None if none or no answer."""
        try:
            found = await asyncio.wait_for(self._store.get.aio(job_id), self.timeout_s)
        except Exception:
            return None
        return str(found) if found else None

    async def cancel(self, job_id: str) -> str | None:
        """Block ``job_id`` from starting; the owning call id if one already claimed it.

        Returns None when the block was placed (no call will run it) or Modal did not answer.
        """
        try:
            placed = await asyncio.wait_for(
                self._store.put.aio(job_id, CANCELLED, skip_if_exists=True), self.timeout_s
            )
        except Exception:
            return None
        if placed:
            return None
        owner = await self.owner(job_id)
        return owner if owner and owner != CANCELLED else None
