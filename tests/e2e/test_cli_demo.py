"""``rewind demo`` as a newcomer runs it: a subprocess, real PostgreSQL, the bundled photo."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


async def test_demo_small_walks_without_a_traceback(database_url: str, tmp_path: Path) -> None:
    # --small used 33-frame chunks with the 125-frame root pose w-31 and died with PoseError.
    env = {**os.environ, "DATABASE_URL": database_url}
    env.pop("REWIND_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "demo", "--small", "--steps", "2",
        "--think", "0.5", "--gpu-delay", "0.1",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "PoseError" not in text
    assert "33 frames 320x180" in text
    assert "summary:" in text
