"""Stale-owner and zombie handling of the embedded PostgreSQL (no server needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.pg_embedded import HANDLE_FILE, pid_alive, prune_stale_handles, shm_attached


def _dead_pid() -> int:
    """The pid of a process that ran and was reaped (so it no longer exists)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_prune_removes_dead_owners_and_keeps_live_ones(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = _dead_pid()
        (tmp_path / HANDLE_FILE).write_text(json.dumps([dead, live.pid, os.getpid()]))
        assert prune_stale_handles(tmp_path) == [dead]
        assert json.loads((tmp_path / HANDLE_FILE).read_text()) == [live.pid, os.getpid()]
        assert prune_stale_handles(tmp_path) == []  # idempotent
    finally:
        live.kill()
        live.wait()


def test_prune_leaves_a_missing_or_broken_file_alone(tmp_path: Path) -> None:
    assert prune_stale_handles(tmp_path) == []
    (tmp_path / HANDLE_FILE).write_text("not json")
    assert prune_stale_handles(tmp_path) == []
    assert (tmp_path / HANDLE_FILE).read_text() == "not json"


def test_a_zombie_is_not_alive() -> None:
    # A child that exits without being waited for stays a zombie: kill(pid, 0) still finds
    # it, which is what fooled the wheel (and PostgreSQL's lock file check).
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    import psutil

    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, 0)  # the kernel still has it
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)
    assert pid_alive(os.getpid())


def test_unknown_shared_memory_segment_has_no_attachments() -> None:
    assert shm_attached(2**31 - 1) == 0
