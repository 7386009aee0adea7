"""``rewind serve``'s log as an operator reads it: JSON lines only, one access line per request.

A real ``rewind serve`` on the embedded PostgreSQL (no DATABASE_URL: a first run in a fresh
folder, initdb included) at log level info. Checks: every line of its output is a JSON object;
each request has exactly one ``request`` line with ``status``, ``duration_ms`` and the route
template, chunk requests also their ``outcome``; uvicorn's plain access lines and initdb/pg_ctl
output are absent, the latter in ``.rewind/logs/postgres.log``; hits, misses and speculation show
up as info events.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import photo_jpeg
from tests.serverproc import Server

pytestmark = pytest.mark.e2e


def _lines(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {raw[:300]!r}")
    return out


@pytest.fixture
def user_folder() -> Iterator[Path]:
    """A folder outside pytest's basetemp: that one is root-only (0700), and the embedded
    PostgreSQL (which runs as its own user when started by root) could not reach a data folder
    under it; a user's home folder is reachable."""
    folder = Path(tempfile.mkdtemp(prefix="rewind-test-logs-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_serve_logs_json_only_with_one_access_line_per_request(user_folder: Path) -> None:
    tmp_path = user_folder
    env = {"REWIND_LOG__LEVEL": "info", "REWIND_SPECULATION__THINK_S": "0.3"}
    server = Server(None, tmp_path, tmp_path / "serve.log", extra_env=env)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            created = client.post(
                "/api/memories?inline=false",
                json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
                headers={"x-request-id": "req-create"},
            ).json()
            parent = created["chunk"]["chunk_id"]
            outcomes = []
            for i, action in enumerate(("w", "w", "w")):
                time.sleep(1.5)  # markov speculates the next "w" meanwhile
                r = client.post(
                    f"/api/memories/{created['memory_id']}/chunks?inline=false",
                    json={"parent_chunk_id": parent, "action": action,
                          "session_id": created["session_id"]},
                    headers={"x-request-id": f"req-step-{i}"},
                )  # fmt: skip
                assert r.status_code == 200, r.text
                assert r.headers["x-request-id"] == f"req-step-{i}"
                parent = r.json()["chunk"]["chunk_id"]
                outcomes.append(r.json()["chunk"]["outcome"])
            bad = client.get("/api/memories/not-a-uuid", headers={"x-request-id": "req-bad"})
            assert bad.status_code == 422
    finally:
        server.stop()
    text = (tmp_path / "serve.log").read_text()
    lines = _lines(text)
    assert "initdb" not in text and "pg_ctl" not in text and "HTTP/1.1" not in text
    access = [x for x in lines if x.get("event") == "request"]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for x in access:
        by_id.setdefault(x["request_id"], []).append(x)
        assert isinstance(x["duration_ms"], float | int) and x["duration_ms"] >= 0
        assert x["level"] == "info" and "timestamp" in x
    for i, outcome in enumerate(outcomes):
        (step,) = by_id[f"req-step-{i}"]
        assert step["status"] == 200 and step["method"] == "POST"
        assert step["route"] == "/api/memories/{memory_id}/chunks"
        assert step["outcome"] == outcome and step["chunk_id"]
    (create,) = by_id["req-create"]
    assert create["route"] == "/api/memories" and create["outcome"] == "root"
    assert create["duration_ms"] > 0
    (bad_line,) = by_id["req-bad"]
    assert bad_line["status"] == 422 and bad_line["route"] == "/api/memories/{memory_id}"
    served = [x for x in lines if x.get("event") == "chunk_served"]
    assert [x["outcome"] for x in served][-3:] == outcomes
    assert any(x.get("event") == "speculation_started" for x in lines)
    pg_log = tmp_path / ".rewind" / "logs" / "postgres.log"
    assert pg_log.exists() and "initdb" in pg_log.read_text()
