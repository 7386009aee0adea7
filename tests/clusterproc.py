"""Real ``rewind serve --role ...`` processes on one PostgreSQL (issue 16's test and benchmarks).

Every process runs ``python -m orchestrator serve`` with the role's flag on a free loopback
port, on the given database and one shared data folder (the local blob store stands for the
shared storage of a real deployment), with small chunks (33 frames, 160x96, root ``w-8``).
A standby scheduler does not listen until it is elected (uvicorn binds after the app's start-up,
which waits for the leader lock): ``wait_listening`` is how a harness sees it take over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.serve import free_port


class Proc:
    """One ``rewind serve --role <role>`` subprocess; output in ``log``."""

    def __init__(
        self, role: str, database_url: str, data_dir: Path, log: Path, *,
        delay_s: float = 2.0, workers: int = 1, port: int | None = None,
        env: dict[str, str] | None = None, name: str | None = None,
    ) -> None:  # fmt: skip
        self.role, self.port, self.log = role, port or free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        full = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REWIND_SERVER__DATA_DIR": str(data_dir),
            "REWIND_GENERATION__FRAMES": "33",
            "REWIND_GENERATION__WIDTH": "160",
            "REWIND_GENERATION__HEIGHT": "96",
            "REWIND_GENERATION__ROOT_POSE": "w-8",
            "REWIND_GPU__DELAY_S": str(delay_s),
            "REWIND_GPU__MAX_CONTAINERS": "4",
            "REWIND_SPECULATION__POLICY": "none",
            "REWIND_CLUSTER__POLL_S": "0.5",
            "REWIND_CLUSTER__LEADER_POLL_S": "0.25",
            "REWIND_LOG__LEVEL": "info",
            "REWIND_CLUSTER__NAME": name or f"{role}-{self.port}",
            **(env or {}),
        }
        full.pop("REWIND_CONFIG", None)
        args = [sys.executable, "-m", "orchestrator", "serve", "--role", role,
                "--port", str(self.port)]  # fmt: skip
        if workers > 1:
            args += ["--workers", str(workers)]
        self._out = log.open("wb")
        # Its own process group: a kill reaches the workers of ``--workers N`` too.
        self.proc = subprocess.Popen(
            args, env=full, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def listening(self) -> bool:
        """True when /api/health answers 200."""
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_listening(self, timeout_s: float = 60.0) -> float:
        """Block until the process answers; returns the monotonic time it first did.

        Raises RuntimeError (with the log's tail) if it exits or does not answer in time.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} exited early:\n{self.tail()}")
            if self.listening():
                return time.monotonic()
            time.sleep(0.05)
        raise RuntimeError(f"{self.role} did not answer within {timeout_s} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def kill9(self) -> None:
        """SIGKILL to the process (and its workers), as a power cut would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGINT, then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
