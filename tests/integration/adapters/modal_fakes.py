"""Stand-ins for modal 1.6's client objects, at the client boundary (no credentials here).

Each mirrors the real object's call shape, checked in the installed package: ``FunctionCall``
(``get.aio(timeout=)``, ``cancel.aio()``, ``object_id``), a method's ``spawn.aio(**kwargs)``, a
``Dict`` (``get.aio``, ``put.aio(key, value, skip_if_exists=)``), a ``Cls`` from ``from_name``
(``hydrate.aio()``, instances with ``update_autoscaler.aio(...)``). Outcomes are the values and
exception types modal itself returns and raises.
"""

from __future__ import annotations

import asyncio
from typing import Any

import modal.exception as mx

from gpu.claims import ClaimsClient, MemoryClaims
from gpu.modal_deployment import ModalDeployment
from gpu.modal_pool import ModalGpuPool


class Aio:
    """An object whose ``.aio`` is ``fn`` (synchronicity's async face)."""

    def __init__(self, fn: Any) -> None:
        self.aio = fn


class FakeCall:
    """A FunctionCall: ``get.aio`` pops ``outcomes`` (raised, returned, or awaited forever)."""

    def __init__(self, outcomes: list[Any], object_id: str = "fc-01TEST") -> None:
        self.object_id = object_id
        self.outcomes = outcomes
        self.polls: list[float | None] = []
        self.cancelled = 0
        self.get = Aio(self._get)
        self.cancel = Aio(self._cancel)

    async def _get(self, timeout: float | None = None) -> Any:
        self.polls.append(timeout)
        outcome = self.outcomes.pop(0) if self.outcomes else asyncio.Event().wait()
        if asyncio.iscoroutine(outcome):
            return await outcome  # "forever": a call that never finishes
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _cancel(self, terminate_containers: bool = False) -> None:
        self.cancelled += 1


class FakeMethod:
    """``generate`` with ``spawn.aio``: each entry of ``spawns`` is raised, returned or, when a
    coroutine function, awaited with the spawn kwargs. ``get_current_stats.aio`` answers
    ``stats`` (a ``modal.types.FunctionCurrentStats``) or raises it."""

    def __init__(self, spawns: list[Any], stats: Any = None) -> None:
        self.spawns = spawns
        self.kwargs: list[dict[str, Any]] = []
        self.spawn = Aio(self._spawn)
        self.stats = stats
        self.get_current_stats = Aio(self._stats)

    async def _stats(self) -> Any:
        if isinstance(self.stats, BaseException):
            raise self.stats
        return self.stats

    async def _spawn(self, **kwargs: Any) -> Any:
        self.kwargs.append(kwargs)
        outcome = self.spawns.pop(0)
        if callable(outcome):
            return await outcome(**kwargs)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class FakeDict:
    """A modal.Dict: put-if-absent like Modal's ``DictUpdate(if_not_exists=True)``."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.get = Aio(self._get)
        self.put = Aio(self._put)

    async def _get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def _put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> bool:
        if skip_if_exists and key in self.data:
            return False
        self.data[key] = value
        return True


class FakeCls:
    """``modal.Cls.from_name(...)``: ``hydrate.aio`` raises ``missing`` if set; instances keep
    the autoscaler calls in ``autoscaler`` (shared list)."""

    def __init__(self, missing: BaseException | None, autoscaler: list[dict[str, Any]]) -> None:
        self.missing = missing
        self.autoscaler = autoscaler
        self.hydrate = Aio(self._hydrate)

    async def _hydrate(self) -> None:
        if self.missing is not None:
            raise self.missing

    def __call__(self) -> Any:
        instance = type("Obj", (), {})()
        instance.update_autoscaler = Aio(self._update)
        return instance

    async def _update(self, **kwargs: Any) -> dict[str, Any]:
        if self.missing is not None:
            raise self.missing
        self.autoscaler.append(kwargs)
        return kwargs


class FakeModal:
    """One fake deployment: its lookups, autoscaler calls and claims Dict."""

    def __init__(self, deployed: bool = True) -> None:
        self.deployed = deployed
        self.lookups: list[tuple[str, str, str | None]] = []
        self.autoscaler: list[dict[str, Any]] = []
        self.dict = FakeDict()

    def from_name(self, app: str, cls: str, environment_name: str | None = None) -> FakeCls:
        self.lookups.append((app, cls, environment_name))
        missing = None if self.deployed else mx.NotFoundError(f"App '{app}' not found")
        return FakeCls(missing, self.autoscaler)

    def deployment(self, **kwargs: Any) -> ModalDeployment:
        return ModalDeployment("rewind-worldplay", "WorldPlay", lookup=self.from_name, **kwargs)


def make_pool(method: Any, modal_: FakeModal | None = None, **kwargs: Any) -> ModalGpuPool:
    """A ModalGpuPool whose every Modal object is a stand-in (claims, lookup, calls)."""
    fake = modal_ or FakeModal()
    kwargs.setdefault("claims", ClaimsClient(fake.dict, timeout_s=1.0))
    kwargs.setdefault("deployment", fake.deployment())
    return ModalGpuPool(method=method, **kwargs)


__all__ = ["Aio", "FakeCall", "FakeDict", "FakeMethod", "FakeModal", "MemoryClaims", "make_pool"]
