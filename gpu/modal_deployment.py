"""The deployed Modal class as the orchestrator sees it: is it there, and how many stay warm.

- ``probe()`` looks the class up (``modal.Cls.from_name(app, cls).hydrate.aio()``; a fresh
  ``from_name`` object each time, because a hydrated one never looks again). Modal raises
  ``NotFoundError`` when the app or the class is not deployed: the pool is then unhealthy.
  Results are cached for ``ttl_s`` so ``/api/health`` polling does not hammer Modal.
- ``set_warm(min_containers, buffer_containers)`` calls modal 1.6's ``update_autoscaler`` on a
  ``Cls`` *instance* (``modal.Cls.from_name(...)().update_autoscaler(min_containers=...,
  buffer_containers=...)``). The override holds until the next ``modal deploy``. Repeating the
  current setting makes no call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import modal
import modal.exception as mx

from gpu.modal_errors import map_modal_error
from gpu.protocol import GenerationError


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """One lookup of the deployed class.

    Attributes:
        found: True (deployed), False (Modal said not found), None (no answer / other error).
        error: what went wrong, for /api/health (None when found).
        checked_at: epoch seconds of the lookup.
    """

    found: bool | None
    error: str | None
    checked_at: float


class ModalDeployment:
    """Lookup and autoscaler control of ``app_name``/``cls_name``.

    Args:
        lookup: test seam, ``lookup(app, cls, environment_name)`` returning a ``modal.Cls``-like
            object (default ``modal.Cls.from_name``).
        ttl_s: seconds a probe result is reused.
        timeout_s: seconds one Modal call may take.
    """

    def __init__(
        self, app_name: str, cls_name: str, *, environment_name: str | None = None,
        lookup: Callable[..., Any] | None = None, ttl_s: float = 30.0, timeout_s: float = 15.0,
    ) -> None:  # fmt: skip
        self.app_name, self.cls_name = app_name, cls_name
        self.environment_name = environment_name
        self._lookup = lookup or modal.Cls.from_name
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self._status: DeploymentStatus | None = None
        self._instance: Any = None
        self.warm: tuple[int, int | None] | None = None  # last (min, buffer) Modal accepted

    def _cls(self) -> Any:
        return self._lookup(self.app_name, self.cls_name, environment_name=self.environment_name)

    async def probe(self, *, force: bool = False) -> DeploymentStatus:
        """Look the class up (cached ``ttl_s``). Never raises."""
        now = time.time()
        if not force and self._status is not None and now - self._status.checked_at < self.ttl_s:
            return self._status
        try:
            await asyncio.wait_for(self._cls().hydrate.aio(), self.timeout_s)
            status = DeploymentStatus(True, None, now)
        except mx.NotFoundError as exc:
            status = DeploymentStatus(
                False,
                f"{self.app_name}/{self.cls_name} is not deployed ({exc}): run "
                "`modal deploy gpu/modal_app.py`",
                now,
            )
        except Exception as exc:
            status = DeploymentStatus(
                None, f"Modal lookup failed: {type(exc).__name__}: {exc}", now
            )
        self._status = status
        return status

    async def set_warm(self, min_containers: int, buffer_containers: int | None = None) -> bool:
        """Keep ``min_containers`` warm (and ``buffer_containers`` extra while busy).

        Returns True when Modal was called, False when the setting was already in force.

        Raises:
            ValueError: negative counts.
            GenerationError: Modal refused or did not answer (``transient`` as for calls).
        """
        if min_containers < 0 or (buffer_containers is not None and buffer_containers < 0):
            raise ValueError("container counts must be >= 0")
        wanted = (min_containers, buffer_containers)
        if wanted == self.warm:
            return False
        if self._instance is None:
            self._instance = self._cls()()
        kwargs: dict[str, int] = {"min_containers": min_containers}
        if buffer_containers is not None:
            kwargs["buffer_containers"] = buffer_containers
        try:
            await asyncio.wait_for(self._instance.update_autoscaler.aio(**kwargs), self.timeout_s)
        except Exception as exc:
            error: GenerationError = map_modal_error(exc, where=f"{self.app_name}/{self.cls_name}")
            raise error from exc
        self.warm = wanted
        return True
