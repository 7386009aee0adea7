"""A real ``rewind serve`` subprocess for tests that drive it as a user would (browser, README).

It runs ``python -m orchestrator serve`` on a free loopback port, in a user folder as the working
directory (so the default relative data folder ``.rewind/`` is used), on the test's database, with
small chunks (33 frames, 320x180, root pose ``w-8``) and the ``markov`` policy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

FRAMES = 33
WIDTH, HEIGHT = 320, 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A ``rewind serve`` subprocess; its output goes to ``log`` (shown when a test fails).

    It runs as a user runs it: in ``folder`` as the working directory, on the default relative
    data folder ``.rewind/`` (so blobs live under ``folder/.rewind/blobs``).
    """

    def __init__(
        self,
        database_url: str | None,
        folder: Path,
        log: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "REWIND_GENERATION__FRAMES": str(FRAMES),
            "REWIND_GENERATION__WIDTH": str(WIDTH),
            "REWIND_GENERATION__HEIGHT": str(HEIGHT),
            "REWIND_GENERATION__ROOT_POSE": "w-8",
            "REWIND_SPECULATION__POLICY": "markov",
            "REWIND_SPECULATION__THINK_S": "1.0",
            "REWIND_GPU__DELAY_S": "0.4",
            "REWIND_GPU__MAX_CONTAINERS": "3",
            "REWIND_LOG__LEVEL": "warning",
        }
        env.pop("REWIND_CONFIG", None)
        env.pop("DATABASE_URL", None)  # None: the embedded PostgreSQL, as a user's first run
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        env.pop("REWIND_SERVER__DATA_DIR", None)
        env.update(extra_env or {})
        self.data_dir = folder / ".rewind"
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(self.port)],
            env=env,
            cwd=folder,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rewind serve exited early:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rewind serve did not answer within 90 s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
