"""Server memory under oversized chunked uploads: 300 MB POSTs with no Content-Length.

Issue 12 measured one such POST to /api/memories taking the server from 160 MB to 1,049 MB RSS
before its 413 (the body was buffered whole). With the streamed limit
(``orchestrator.http_guard.BodyLimit``) the server reads at most ``[http] max_body_bytes`` of
each body. This starts ``rewind serve`` on embedded defaults, warms it with one real memory, then
sends 300 MB chunked bodies (64 KiB chunks, raw socket) one at a time and ``--parallel`` at once,
sampling the server process's RSS every 5 ms (psutil). Reported per case: baseline and peak RSS,
the high-water mark above baseline, the bound (limit x concurrent uploads + 16 MiB for buffers
and allocator slack), bytes the client got to send before the 413 and the connection close, and
the time to the 413. Loopback only.

Usage: ``uv run python benchmarks/upload_memory.py [--mb 300] [--parallel 4] [--out FILE]``
(writes JSON, default ``benchmarks/results/upload_memory.json``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' subprocess helper (tests/ is not installed)

from orchestrator.config import load_settings  # noqa: E402
from tests.e2e.serve import Serve  # noqa: E402

SAMPLE = ROOT / "orchestrator" / "assets" / "astronaut.jpg"
SLACK = 16 * 1024 * 1024
CHUNK = 64 * 1024


class RssSampler:
    """Peak RSS of one process, sampled every ``period_s`` in a thread."""

    def __init__(self, pid: int, period_s: float = 0.005) -> None:
        self.proc = psutil.Process(pid)
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.period_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def chunked_upload(port: int, total: int) -> dict[str, Any]:
    """POST ``total`` bytes to /api/memories, chunked; stop when the server answers."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /api/memories HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"%x\r\n%s\r\n" % (CHUNK, b"A" * CHUNK)
    answer = bytearray()
    answered = threading.Event()

    def read() -> None:
        try:
            while data := sock.recv(65536):
                answer.extend(data)
                answered.set()
        except OSError:
            pass
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    t0 = time.monotonic()
    try:
        while sent < total and not answered.is_set():
            sock.sendall(piece)
            sent += CHUNK
    except OSError:  # the server closed the connection after its answer
        pass
    answered.wait(10)
    seconds = time.monotonic() - t0
    with contextlib.suppress(OSError):  # already closed by the server
        sock.shutdown(socket.SHUT_RDWR)
    reader.join(5)
    sock.close()
    head = bytes(answer).split(b"\r\n\r\n", 1)
    status = int(head[0].split()[1]) if head[0].startswith(b"HTTP/") else None
    body = json.loads(head[1]) if len(head) > 1 and head[1] else {}
    return {
        "status": status,
        "error": body.get("error"),
        "sent_bytes": sent,
        "seconds": round(seconds, 3),
    }


def case(serve: Serve, total: int, parallel: int, limit: int) -> dict[str, Any]:
    """One measured case: ``parallel`` uploads of ``total`` bytes at once."""
    proc = psutil.Process(serve.proc.pid)
    time.sleep(1.0)
    baseline = proc.memory_info().rss
    results: list[dict[str, Any]] = []
    with RssSampler(serve.proc.pid) as sampler:
        threads = [
            threading.Thread(target=lambda: results.append(chunked_upload(serve.port, total)))
            for _ in range(parallel)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.2)
    growth = sampler.peak - baseline
    bound = limit * parallel + SLACK
    return {
        "parallel": parallel,
        "offered_bytes_each": total,
        "baseline_rss_mb": round(baseline / 2**20, 1),
        "peak_rss_mb": round(sampler.peak / 2**20, 1),
        "high_water_above_baseline_mb": round(growth / 2**20, 1),
        "bound_mb": round(bound / 2**20, 1),
        "within_bound": growth <= bound,
        "uploads": results,
    }


def main() -> None:
    """Parse arguments, measure, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="offered body size, MB (10^6)")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/upload_memory.json")
    args = parser.parse_args()
    settings = load_settings(use_file=False)
    limit = settings.http.max_body_bytes or settings.limits.max_image_bytes * 4 // 3 + 64 * 1024
    folder = Path(tempfile.mkdtemp(prefix="rewind-upload-"))
    serve = Serve(folder)
    try:
        warm = httpx.post(
            f"{serve.url}/api/memories?inline=false",
            json={"image_base64": base64.b64encode(SAMPLE.read_bytes()).decode()},
            timeout=120,
        )
        assert warm.status_code == 200, warm.text
        total = args.mb * 10**6
        result = {
            "limit_bytes": limit,
            "slack_bytes": SLACK,
            "cases": [case(serve, total, 1, limit), case(serve, total, args.parallel, limit)],
        }
    finally:
        serve.stop()
        shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
