"""A real ``rewind serve`` subprocess on the embedded PostgreSQL (or DATABASE_URL), for faults.

Small chunks (33 frames, 160x96) keep generations short; ``delay_s`` holds each GPU slot longer
so a test can act while a generation runs. Helpers find the embedded postmaster and every live
PostgreSQL process serving a data folder (zombies are not live: this machine's pid 1 does not
reap them, and they hold nothing).
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
import psutil

from orchestrator.pg_embedded import pid_alive, postmaster_pid


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Serve:
    """``python -m orchestrator serve`` with its own data folder; ``url`` once healthy.

    ``Serve.started`` lists every instance, so a fixture can kill what a failed test left.
    """

    started: list[Serve] = []  # noqa: RUF012 (a registry shared on purpose)

    def __init__(
        self,
        data_dir: Path,
        *,
        delay_s: float = 0.0,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        environ.update(
            {
                "REWIND_SERVER__DATA_DIR": str(data_dir),
                "REWIND_GPU__DELAY_S": str(delay_s),
                "REWIND_GENERATION__FRAMES": "33",
                "REWIND_GENERATION__WIDTH": "160",
                "REWIND_GENERATION__HEIGHT": "96",
                "REWIND_GENERATION__ROOT_POSE": "w-8",
                "REWIND_SPECULATION__POLICY": "none",  # the on-demand baseline: exact job counts
                "REWIND_LOG__LEVEL": "warning",
                **(env or {}),
            }
        )
        if database_url is not None:
            environ["DATABASE_URL"] = database_url
        out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(self.port)],
            env=environ,
            stdout=out,
            stderr=out,
        )
        Serve.started.append(self)
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_healthy(90)

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds until /api/health answers 200 with the database ok. Raises RuntimeError."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rewind serve exited with {self.proc.returncode}")
            try:
                r = httpx.get(f"{self.url}/api/health", timeout=2)
                if r.status_code == 200 and r.json()["database"]["status"] == "ok":
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("service did not become healthy")

    def kill(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30) -> int:
        """A clean stop (SIGTERM); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)


def pgdata(data_dir: Path) -> Path:
    """The embedded server's data folder under a service data folder."""
    return data_dir / "pg"


def kill_postmaster(data_dir: Path, *, pg_folder: Path | None = None) -> int:
    """SIGKILL the embedded postmaster of service folder ``data_dir`` (or of ``pg_folder``).

    Returns once the postmaster has exited (gone or a zombie), so a restart that follows does not
    find it still running for the instant SIGKILL takes to land (CI saw that: the restart took the
    dying server for a live one and started nothing). Raises AssertionError after 10 s.
    """
    pid = postmaster_pid(pg_folder or pgdata(data_dir))
    assert pid is not None and pid_alive(pid), "no running embedded postmaster"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"postmaster {pid} still running 10 s after SIGKILL"
        time.sleep(0.01)
    return pid


def live_postgres(data_dir: Path) -> list[int]:
    """Pids of live (non-zombie) postgres processes of ``data_dir``'s embedded server.

    The postmaster is found by its ``-D <pgdata>`` argument, its children by parentage; an
    orphaned child (its postmaster killed) by the socket folder in its environment is not
    visible, so children of every postmaster ever recorded are also matched by parent pid.
    """
    folder = str(pgdata(data_dir).resolve())
    masters: set[int] = set()
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        info = proc.info
        if info["name"] != "postgres" or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if folder in (info["cmdline"] or []):
            masters.add(info["pid"])
    pids = set(masters)
    for proc in psutil.process_iter(["pid", "name", "ppid", "status"]):
        info = proc.info
        if info["ppid"] in masters and info["status"] != psutil.STATUS_ZOMBIE:
            pids.add(info["pid"])
    return sorted(pids)
