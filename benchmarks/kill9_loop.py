"""kill -9 loop: crash the service (and its embedded PostgreSQL) mid-generation, N times.

Each iteration starts ``rewind serve`` on embedded defaults in one data folder (small chunks,
each generation held ``--delay`` s), sends three new chunk requests from the current parent, and
within a second kills: on even iterations the service (SIGKILL), on odd ones first the embedded
postmaster (SIGKILL; the service must answer 503s and restart it by itself, timed) and then the
service. A final start lets the service resume every accepted request; then it is stopped
cleanly. Counted at the end, from the database and the files:

- lost: accepted chunks (a ``chunks`` row exists) that are not ready, or whose MP4 is missing or
  does not decode to the profile's frame count;
- duplicates: chunk keys with more than one row, and chunks with more than one succeeded job;
- leaked: live (non-zombie) postgres processes of this data folder after the final clean stop.
  Zombies are counted apart: this machine's pid 1 does not reap orphans, so a killed postmaster
  stays a zombie; it holds no memory, socket or file.

Usage: ``uv run python benchmarks/kill9_loop.py [--iterations 12] [--out FILE]``
(writes JSON, default ``benchmarks/results/kill9_loop.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import av
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' subprocess helpers (tests/ is not installed)

from tests.e2e.serve import Serve, kill_postmaster, live_postgres  # noqa: E402

SAMPLE = ROOT / "orchestrator" / "assets" / "astronaut.jpg"
ACTIONS = ["w", "a", "d", "s", "left", "right", "up", "down", "w+left", "w+right"]
FRAMES = 33  # tests.e2e.serve's small profile


def _post_chunks(url: str, memory_id: str, parent: str, actions: list[str]) -> list[Any]:
    """Fire the requests in threads; each may be cut by the kill (that is the point)."""
    results: list[Any] = []

    def one(action: str) -> None:
        try:
            r = httpx.post(
                f"{url}/api/memories/{memory_id}/chunks?inline=false",
                json={"parent_chunk_id": parent, "action": action},
                timeout=30,
            )
            results.append(r.status_code)
        except httpx.HTTPError as exc:
            results.append(type(exc).__name__)

    for action in actions:
        threading.Thread(target=one, args=(action,), daemon=True).start()
    return results


def _wait_answers(url: str, memory_id: str, bound_s: float) -> dict[str, Any]:
    """During the database outage: every answer JSON, within bound; time to recovery."""
    t0 = time.monotonic()
    statuses: list[int] = []
    slowest = 0.0
    while time.monotonic() - t0 < 60:
        t = time.monotonic()
        r = httpx.get(f"{url}/api/memories/{memory_id}", timeout=bound_s)
        slowest = max(slowest, time.monotonic() - t)
        assert r.headers["content-type"] == "application/json", r.text
        statuses.append(r.status_code)
        if r.status_code == 200 and 503 in statuses:
            break
        time.sleep(0.1)
    return {
        "recovery_s": round(time.monotonic() - t0, 2),
        "answers": len(statuses),
        "answers_503": statuses.count(503),
        "slowest_answer_s": round(slowest, 3),
    }


def _decodes(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return sum(1 for _ in c.decode(video=0)) == FRAMES
    except (OSError, av.FFmpegError):
        return False


async def _audit(dsn: str, blobs: Path) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        chunks = await conn.fetch("SELECT id, memory_id, status, video_path FROM chunks")
        dup_keys = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY memory_id, parent_chunk_id,"
            " pose, profile_key HAVING count(*) > 1) d"
        )
        dup_jobs = await conn.fetchval(
            "SELECT count(*) FROM (SELECT chunk_id FROM gpu_jobs WHERE status = 'succeeded'"
            " GROUP BY chunk_id HAVING count(*) > 1) d"
        )
        jobs = await conn.fetch("SELECT status, count(*) AS n FROM gpu_jobs GROUP BY status")
    finally:
        await conn.close()
    lost = [
        str(c["id"])
        for c in chunks
        if c["status"] != "ready"
        or c["video_path"] is None
        or not _decodes(blobs / "videos" / c["video_path"])
    ]
    return {
        "accepted_chunks": len(chunks),
        "lost": len(lost),
        "lost_ids": lost,
        "duplicate_keys": dup_keys,
        "duplicate_succeeded_jobs": dup_jobs,
        "jobs_by_status": {j["status"]: j["n"] for j in jobs},
    }


def _zombies() -> int:
    return sum(
        1
        for p in psutil.process_iter(["name", "status"])
        if p.info["name"] == "postgres" and p.info["status"] == psutil.STATUS_ZOMBIE
    )


def run(iterations: int, delay_s: float, seed: int) -> dict[str, Any]:
    """The loop; returns the JSON-ready result."""
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="rewind-kill9-"))
    log = folder / "serve.log"
    zombies_before = _zombies()
    per_iter: list[dict[str, Any]] = []
    try:
        svc = Serve(folder, log=log)
        body = httpx.post(
            f"{svc.url}/api/memories?inline=false",
            json={"image_base64": base64.b64encode(SAMPLE.read_bytes()).decode()},
            timeout=120,
        ).json()
        memory_id, parent = body["memory_id"], body["chunk"]["chunk_id"]
        svc.stop()
        for i in range(iterations):
            svc = Serve(folder, delay_s=delay_s, log=log)
            # Move one step down first (on a started server the parent must be ready).
            step = httpx.post(
                f"{svc.url}/api/memories/{memory_id}/chunks?inline=false",
                json={"parent_chunk_id": parent, "action": rng.choice(ACTIONS)},
                timeout=120,
            )
            parent = step.json()["chunk"]["chunk_id"]
            _post_chunks(svc.url, memory_id, parent, rng.sample(ACTIONS, 3))
            time.sleep(rng.uniform(0.3, 1.0))
            record: dict[str, Any] = {"iteration": i, "fault": "service"}
            if i % 2:
                record["fault"] = "postmaster+service"
                kill_postmaster(folder)
                record.update(_wait_answers(svc.url, memory_id, bound_s=5.0))
            svc.kill()
            record["live_postgres_after_kill"] = len(live_postgres(folder))
            per_iter.append(record)
            print(json.dumps(record), flush=True)
        final = Serve(folder, log=log)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            tree = httpx.get(f"{final.url}/api/memories/{memory_id}", timeout=10).json()
            if all(c["status"] == "ready" for c in tree["chunks"]):
                break
            time.sleep(0.5)
        dsn = f"postgresql://postgres:@/postgres?host={(folder / 'pg').resolve()}"
        audit = asyncio.run(_audit(dsn, folder / "blobs"))
        exit_code = final.stop()
        time.sleep(1.0)
        leaked = live_postgres(folder)
        return {
            "iterations": iterations,
            "delay_s": delay_s,
            "seed": seed,
            "faults": per_iter,
            **audit,
            "final_stop_exit_code": exit_code,
            "leaked_postgres": len(leaked),
            "new_zombie_postgres": _zombies() - zombies_before,
            "postmaster_recovery_s": [r["recovery_s"] for r in per_iter if "recovery_s" in r],
        }
    finally:
        for s in Serve.started:
            if s.proc.poll() is None:
                s.kill()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Parse arguments, run, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--delay", type=float, default=2.0, help="GPU seconds per chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/kill9_loop.json")
    args = parser.parse_args()
    result = run(args.iterations, args.delay, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    keys = ("accepted_chunks", "lost", "duplicate_keys", "duplicate_succeeded_jobs")
    print(json.dumps({k: result[k] for k in (*keys, "leaked_postgres", "new_zombie_postgres")}))


if __name__ == "__main__":
    main()
