"""A crash loses nothing: kill -9 the service mid-generation, start it again, the chunk arrives.

The service runs as a real subprocess (``rewind serve``) on the test's database; SIGKILL leaves
its gpu_jobs row 'running', exactly what a power cut would. The next start marks that attempt
interrupted and resubmits the accepted request; the chunk is generated once and only once.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import photo_jpeg

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Server:
    def __init__(self, database_url: str, data_dir: Path, delay_s: float) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REWIND_SERVER__DATA_DIR": str(data_dir),
            "REWIND_GPU__DELAY_S": str(delay_s),
            "REWIND_GENERATION__FRAMES": "33",
            "REWIND_GENERATION__WIDTH": "160",
            "REWIND_GENERATION__HEIGHT": "96",
            "REWIND_GENERATION__ROOT_POSE": "w-8",
            "REWIND_SPECULATION__POLICY": "none",  # the on-demand baseline: exact job counts
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("service did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)


@pytest.fixture
def servers(database_url: str, data_dir: Path) -> Iterator[list[_Server]]:
    started: list[_Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.kill()


async def test_kill_during_generation_loses_nothing(
    servers: list[_Server], database_url: str, data_dir: Path
) -> None:
    first = _Server(database_url, data_dir, delay_s=0.0)
    servers.append(first)
    body = httpx.post(
        f"{first.url}/api/memories?inline=false",
        json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        timeout=60,
    ).json()
    memory_id, root = body["memory_id"], body["chunk"]["chunk_id"]
    first.stop()

    slow = _Server(database_url, data_dir, delay_s=30.0)
    servers.append(slow)
    with pytest.raises(httpx.ReadTimeout):  # the request is accepted, then the process dies
        httpx.post(
            f"{slow.url}/api/memories/{memory_id}/chunks",
            json={"parent_chunk_id": root, "action": "left"},
            timeout=3,
        )
    conn = await asyncpg.connect(database_url)
    try:
        running = await conn.fetch("SELECT id, status FROM gpu_jobs WHERE status = 'running'")
        assert len(running) == 1
        slow.kill()

        again = _Server(database_url, data_dir, delay_s=0.0)
        servers.append(again)
        chunk_id = None
        for _ in range(200):
            tree = httpx.get(f"{again.url}/api/memories/{memory_id}").json()
            child = [c for c in tree["chunks"] if c["parent_chunk_id"] == root]
            if child and child[0]["status"] == "ready":
                chunk_id = child[0]["chunk_id"]
                break
            time.sleep(0.1)
        assert chunk_id is not None, "the accepted request was not resumed"
        jobs = await conn.fetch(
            "SELECT status FROM gpu_jobs WHERE chunk_id = $1 ORDER BY queued_at",
            uuid.UUID(chunk_id),
        )
        assert [j["status"] for j in jobs] == ["interrupted", "succeeded"]
        # The same request now is a hit on the one generated chunk.
        r = httpx.post(
            f"{again.url}/api/memories/{memory_id}/chunks?inline=false",
            json={"parent_chunk_id": root, "action": "left"},
            timeout=30,
        )
        assert r.json()["chunk"]["chunk_id"] == chunk_id
        assert r.json()["chunk"]["outcome"] == "hit"
        again.stop()
    finally:
        await conn.close()
