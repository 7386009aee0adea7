"""Several API replica processes behind one port (``rewind serve --role api --workers N``).

Each worker is a full ``rewind serve --role api`` process (its own event loop, view, database
pool and write-behind: a replica as any other, named ``<name>-w<i>``). They share the port with
``SO_REUSEPORT``: the Linux kernel spreads new connections over the listening processes, so no
process proxies another's traffic. The supervisor restarts a worker that dies (after a second)
and passes SIGINT / SIGTERM on to all of them, once: workers run in their own sessions, so a
terminal's Ctrl-C does not reach them twice (a second SIGINT makes uvicorn skip the graceful
shutdown that flushes the hit rows written behind). A worker whose supervisor dies gets SIGTERM
(Linux ``PR_SET_PDEATHSIG``) and stops gracefully.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

_RESTART_AFTER_S = 1.0


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (not listening yet).

    Raises OSError: the address is taken by a process that did not set SO_REUSEPORT.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the supervisor was already gone
        os.kill(os.getpid(), signal.SIGTERM)


def serve_reusing_port(app: Any, host: str, port: int, options: dict[str, Any]) -> None:
    """Run uvicorn for ``app`` on a SO_REUSEPORT socket (one worker of several)."""
    _stop_with_parent()
    sock = reuse_port_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
    server.run(sockets=[sock])


def _spawn(i: int, host: str, port: int, config: Path | None) -> subprocess.Popen[bytes]:
    base = os.environ.get("REWIND_CLUSTER__NAME") or f"{socket.gethostname()}:{os.getpid()}"
    env = {**os.environ, "REWIND_CLUSTER__NAME": f"{base}-w{i}"}
    args = [sys.executable, "-m", "orchestrator", "serve", "--role", "api", "--reuse-port",
            "--host", host, "--port", str(port)]  # fmt: skip
    if config is not None:
        args += ["--config", str(config)]
    return subprocess.Popen(args, env=env, start_new_session=True)


def supervise(workers: int, host: str, port: int, config: Path | None) -> int:
    """Run ``workers`` API processes on (host, port) until SIGINT / SIGTERM; returns 0.

    A worker that exits on its own is started again after ``_RESTART_AFTER_S`` seconds.
    """
    procs = [_spawn(i, host, port, config) for i in range(workers)]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    log.info("api_workers_started", workers=workers, port=port, pids=[p.pid for p in procs])
    while not stopping:
        time.sleep(0.2)
        for i, p in enumerate(procs):
            if p.poll() is not None and not stopping:
                log.warning("api_worker_died", worker=i, code=p.returncode)
                time.sleep(_RESTART_AFTER_S)
                procs[i] = _spawn(i, host, port, config)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
    return 0
