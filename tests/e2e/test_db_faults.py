"""Fault injection on the database: kill -9 the embedded postmaster, kill -9 the service.

Issue 12: after the embedded PostgreSQL died every endpoint answered a plain-text 500 until a
person restarted the service, and after a kill -9 of the service every later clean stop leaked
the postmaster and its children. These tests run a real ``rewind serve`` on its own embedded
server (no DATABASE_URL), and a real external server for the reconnect path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.pg_embedded import EmbeddedPostgres, pid_alive, postmaster_pid
from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for
from tests.e2e.serve import Serve, kill_postmaster, live_postgres

pytestmark = pytest.mark.e2e

ANSWER_BOUND_S = 5.0  # every request during the outage is answered within this
RECOVERY_BOUND_S = 60.0  # the service heals itself within this (PostgreSQL crash recovery)


@pytest.fixture
def serve_dir() -> Iterator[Path]:
    """A data folder outside pytest's basetemp, with any server in it stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="rewind-fault-"))
    yield folder
    for svc in Serve.started:
        if svc.proc.poll() is None:
            svc.kill()
    Serve.started.clear()
    for pid in live_postgres(folder):  # only after a failed test: never leave a server behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def _memory(url: str) -> tuple[str, str]:
    body = httpx.post(
        f"{url}/api/memories?inline=false",
        json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        timeout=120,
    ).json()
    return body["memory_id"], body["chunk"]["chunk_id"]


def test_killed_postmaster_gives_json_503_then_heals_itself(serve_dir: Path) -> None:
    svc = Serve(serve_dir)
    try:
        memory_id, root = _memory(svc.url)
        kill_postmaster(serve_dir)
        t_kill = time.monotonic()
        seen_503 = 0
        recovered_at: float | None = None
        while time.monotonic() - t_kill < RECOVERY_BOUND_S:
            t0 = time.monotonic()
            tree = httpx.get(f"{svc.url}/api/memories/{memory_id}", timeout=ANSWER_BOUND_S)
            video = httpx.get(f"{svc.url}/api/chunks/{root}/video", timeout=ANSWER_BOUND_S)
            assert time.monotonic() - t0 < 2 * ANSWER_BOUND_S
            assert tree.headers["content-type"] == "application/json"
            if tree.status_code == 503:
                seen_503 += 1
                body = tree.json()
                assert body["error"] == "database_unavailable"
                assert set(body) >= {"error", "detail", "field"}
                assert int(tree.headers["retry-after"]) >= 1
            else:
                assert tree.status_code == 200, tree.text
            # The root chunk's files are on disk: it is served through the outage.
            assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
            if tree.status_code == 200 and seen_503:
                recovered_at = time.monotonic() - t_kill
                break
            time.sleep(0.1)
        assert seen_503 > 0, "the outage was never visible"
        assert recovered_at is not None, "the service did not heal by itself"
        # The restart is counted once pg_ctl returns, which may be just after the first query
        # on the new server succeeded: give the count a moment.
        for _ in range(50):
            health = httpx.get(f"{svc.url}/api/health", timeout=5).json()["database"]
            if health["restarts"] >= 1:
                break
            time.sleep(0.1)
        assert health["status"] == "ok" and health["restarts"] >= 1 and health["outages"] >= 1
        # New work runs on the restarted server.
        r = httpx.post(
            f"{svc.url}/api/memories/{memory_id}/chunks?inline=false",
            json={"parent_chunk_id": root, "action": "d"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
    finally:
        svc.stop()
    assert live_postgres(serve_dir) == []


def test_clean_stop_after_a_kill_9_stops_the_server(serve_dir: Path) -> None:
    first = Serve(serve_dir)
    master = postmaster_pid(serve_dir / "pg")
    first.kill()
    assert master is not None and pid_alive(master)  # the postmaster outlives its owner
    second = Serve(serve_dir)  # reuses that server, and drops the dead owner's pid
    assert postmaster_pid(serve_dir / "pg") == master
    owners = json.loads((serve_dir / "pg" / ".handle_pids.json").read_text())
    assert owners == [second.proc.pid]
    second.stop()
    deadline = time.monotonic() + 10
    while live_postgres(serve_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_postgres(serve_dir) == []


def test_in_flight_request_is_answered_when_the_database_dies(serve_dir: Path) -> None:
    """A waiter must get an answer (item 1 of issue 12: the lead's scheduler rewrite), and a
    stop while it still waits takes at most ``[http] graceful_shutdown_s`` (10 s) plus closing.
    """
    svc = Serve(serve_dir, delay_s=3.0)
    memory_id, root = _memory(svc.url)
    result: dict[str, Any] = {}

    def request() -> None:
        try:
            result["r"] = httpx.post(
                f"{svc.url}/api/memories/{memory_id}/chunks?inline=false",
                json={"parent_chunk_id": root, "action": "left"},
                timeout=60,
            )
        except httpx.HTTPError as exc:
            result["error"] = exc

    waiter = threading.Thread(target=request)
    waiter.start()
    time.sleep(1.0)
    # Keep the database down past the generation's end (3 s), so its write must fail.
    outage_end = time.monotonic() + 6.0
    while time.monotonic() < outage_end:
        pid = postmaster_pid(serve_dir / "pg")
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    waiter.join(15)
    answered = not waiter.is_alive()
    t0 = time.monotonic()
    svc.stop(timeout_s=60)
    assert time.monotonic() - t0 < 20, "SIGTERM did not finish within the bound"
    waiter.join(60)
    if not answered:
        pytest.xfail("old scheduler: the waiter is never answered when its job's write fails")
    r = result["r"]
    assert r.status_code in (200, 503), r.text
    assert r.headers["content-type"] == "application/json"


async def test_external_database_outage_is_503_and_reconnects(
    service_factory: Callable[..., Any],
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rewind-external-"))
    server = EmbeddedPostgres(folder / "data")
    dsn = await asyncio.to_thread(server.start)
    try:
        svc = await service_factory(
            database={"url": dsn, "retry_initial_s": 0.2, "probe_interval_s": 0.2}
        )
        assert svc.db.embedded is None  # DATABASE_URL mode: nothing to restart, only reconnect
        async with client_for(svc) as client:
            created = await client.post(
                "/api/memories?inline=false",
                json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
            )
            memory_id = created.json()["memory_id"]
            kill_postmaster(folder, pg_folder=folder / "data")
            for _ in range(50):  # its backends may answer for a moment before they exit
                r = await client.get(f"/api/memories/{memory_id}")
                assert r.status_code in (200, 503), r.text
                if r.status_code == 503:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "database_unavailable"
            assert "retry-after" in r.headers
            assert svc.db.supervisor is not None and not svc.db.supervisor.available
            for _ in range(100):  # the server's operator brings it back
                try:
                    await asyncio.to_thread(server.restart)
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            assert await svc.db.supervisor.wait_available(20), "the pool did not reconnect"
            r = await client.get(f"/api/memories/{memory_id}")
            assert r.status_code == 200, r.text
        await svc.close()
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(folder, ignore_errors=True)
