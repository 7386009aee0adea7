"""A running service (real PostgreSQL, real local GPU pool, real files) behind an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.app import create_app
from orchestrator.config import Settings, load_settings
from orchestrator.service import Service

# Small chunks keep the suite fast; the full 854x480x125 profile is covered by the renderer tests.
SMALL = {"frames": 33, "width": 160, "height": 96, "root_pose": "w-8"}

ServiceFactory = Callable[..., Any]


def make_settings(database_url: str, data_dir: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a test service: small profile, the test's database and data folder."""
    base: dict[str, dict[str, Any]] = {
        "server": {"data_dir": data_dir},
        "database": {"url": database_url, "pool_max": 5},
        "generation": dict(SMALL),
        "gpu": {"max_containers": 2, "workers": 2},
        "log": {"level": "warning"},
        # The built-in default speculates (lookahead); a test service runs the on-demand
        # baseline unless its test asks for a policy, so chunk and job counts stay exact.
        "speculation": {"policy": "none"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_settings(None, use_file=False, **base)


@pytest.fixture
async def service_factory(database_url: str, data_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start services on the test's database (call again after close to simulate a restart)."""
    started: list[Service] = []

    async def start(**sections: dict[str, Any]) -> Service:
        svc = await Service.start(make_settings(database_url, data_dir, **sections))
        started.append(svc)
        return svc

    yield start
    for svc in started:
        if not svc.db.pool.is_closing():
            await svc.close()


def client_for(svc: Service) -> httpx.AsyncClient:
    """An HTTP client speaking to the service's ASGI app in-process.

    Its Host is ``localhost``, one of the embedded default ``[http] allowed_hosts``.
    """
    app = create_app(svc.settings, svc)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=120
    )


@pytest.fixture
async def client(service_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a default test service (policy none)."""
    svc = await service_factory()
    async with client_for(svc) as c:
        c.service = svc  # type: ignore[attr-defined]
        yield c
