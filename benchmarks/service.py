"""Cache-hit latency and throughput through real HTTP on loopback (issue: p99 <= 10 ms at 500).

Starts ``rewind serve`` on embedded defaults (a fresh data folder, small chunks so set-up is
quick), creates one memory and one child chunk, opens N sessions (50, 200, 500), then every
session repeatedly asks for that existing chunk (a hit: no GPU work) for a fixed time, in URL
mode (``inline=false``) and in base64 mode. Client and server share this machine's 2 cores, so
the figures are an upper bound on server latency. Bounded in count and time; loopback only.

Usage: ``uv run python benchmarks/service.py [--seconds 5] [--out benchmarks/results/service.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

SAMPLE = Path(__file__).resolve().parents[1] / "orchestrator" / "assets" / "astronaut.jpg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REWIND_SERVER__DATA_DIR": str(data_dir),
        "REWIND_GENERATION__FRAMES": "33",
        "REWIND_GENERATION__WIDTH": "320",
        "REWIND_GENERATION__HEIGHT": "180",
        "REWIND_GENERATION__ROOT_POSE": "w-8",
        "REWIND_DATABASE__POOL_MAX": "20",
        "REWIND_LOG__LEVEL": "warning",
    }
    env.pop("DATABASE_URL", None)
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("service did not start")


async def _level(
    base: str, memory_id: str, parent: str, sessions: list[str], seconds: float, inline: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=len(sessions), max_keepalive_connections=len(sessions))
    url = f"/api/memories/{memory_id}/chunks?inline={'true' if inline else 'false'}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        stop = time.perf_counter() + seconds

        async def viewer(session_id: str) -> None:
            nonlocal errors
            body = {"parent_chunk_id": parent, "action": "d", "session_id": session_id}
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post(url, json=body)
                if r.status_code != 200 or r.json()["chunk"]["outcome"] != "hit":
                    errors += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        t_start = time.perf_counter()
        await asyncio.gather(*(viewer(s) for s in sessions))
        elapsed = time.perf_counter() - t_start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "sessions": len(sessions),
        "mode": "base64" if inline else "url",
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "throughput_rps": len(latencies) / elapsed,
        "p50_ms": q[49],
        "p99_ms": q[98],
    }


async def run(seconds: float, levels: list[int]) -> list[dict[str, Any]]:
    """Set up the memory and sessions, then measure every level in both modes."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="rewind-bench-") as tmp:
        proc = _start_server(Path(tmp), port)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                image = base64.b64encode(SAMPLE.read_bytes()).decode()
                created = (
                    await client.post("/api/memories?inline=false", json={"image_base64": image})
                ).json()
                memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]
                first = await client.post(
                    f"/api/memories/{memory_id}/chunks?inline=false",
                    json={"parent_chunk_id": root, "action": "d"},
                )
                first.raise_for_status()
                sessions = []
                for _ in range(max(levels)):
                    r = await client.post(f"/api/memories/{memory_id}/sessions", json={})
                    sessions.append(r.json()["session_id"])
            results = []
            for n in levels:
                for inline in (False, True):
                    results.append(
                        await _level(base, memory_id, root, sessions[:n], seconds, inline)
                    )
                    print(
                        f"{n:>4} sessions {results[-1]['mode']:<6} "
                        f"p50 {results[-1]['p50_ms']:7.1f} ms  p99 {results[-1]['p99_ms']:7.1f} ms"
                        f"  {results[-1]['throughput_rps']:7.0f} req/s  "
                        f"errors {results[-1]['errors']}"
                    )
            return results
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--levels", default="50,200,500")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/service.json"))
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results = asyncio.run(run(args.seconds, levels))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    url500 = [r for r in results if r["sessions"] == max(levels) and r["mode"] == "url"]
    summary = {"target_p99_ms_url_500": 10.0, "met": bool(url500) and url500[0]["p99_ms"] <= 10.0}
    args.out.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    print(
        f"target p99 <= 10 ms (URL mode, {max(levels)} sessions): "
        f"{'met' if summary['met'] else 'missed'}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
