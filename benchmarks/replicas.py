"""Hit throughput with 1, 2 and 4 API replica processes, and the failover time (issue 16).

One PostgreSQL (``DATABASE_URL``, or an embedded one started here), one elected scheduler
(``rewind serve --role all``: today's single process, whose own API is the baseline) and, in
turn, ``rewind serve --role api --workers N`` for N in ``--workers`` (several processes on one
port with SO_REUSEPORT), all on the same memory: one ready child of the root, asked for by
``--sessions`` sessions round-robin (``benchmarks/wrk_hit.lua``), so every request is a hit
answered from the serving process's memory. Closed loop with ``wrk -t<threads>
-c<connections>``, targets interleaved over ``--repeats`` (order reversed every other repeat),
median req/s and the ratio to one API process. Client and servers share the machine's cores (2
here): wrk takes part of them, so N > cores cannot scale and the figures say how much of the
hit path a second process wins back on this machine, not on a bigger one.

Then ``--failovers`` times: a request waits on a demand (GPU delay ``--gpu-delay`` s), the
leader is killed (SIGKILL), and the times are taken until the standby answers HTTP (elected,
recovered, listening) and until the waiting request is answered by it.

Usage: ``uv run python benchmarks/replicas.py [--seconds 8] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.hits import LUA, _parse_wrk  # noqa: E402
from orchestrator.db import EmbeddedPostgres  # noqa: E402
from tests.clusterproc import Proc, free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "orchestrator" / "assets" / "astronaut.jpg"


def _database(tmp: Path) -> tuple[str, EmbeddedPostgres | None]:
    url = os.environ.get("DATABASE_URL")
    server = None
    if not url:
        server = EmbeddedPostgres(tmp / "pg")
        url = server.start()
    name = f"rewind_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')  # an identifier: no $n parameter
        finally:
            await conn.close()

    import asyncio

    asyncio.run(create())
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{name}", p.query, p.fragment)), server


def _setup(url: str, sessions: int, ids_file: Path) -> tuple[str, str]:
    """A memory, its ready child ``w`` and ``sessions`` sessions at the root."""
    body = httpx.post(
        f"{url}/api/memories?inline=false",
        json={"image_base64": base64.b64encode(SAMPLE.read_bytes()).decode()},
        timeout=120,
    ).json()
    memory, root = body["memory_id"], body["chunk"]["chunk_id"]
    child = httpx.post(
        f"{url}/api/memories/{memory}/chunks?inline=false",
        json={"parent_chunk_id": root, "action": "w", "session_id": body["session_id"]},
        timeout=120,
    )
    child.raise_for_status()
    ids = [
        httpx.post(f"{url}/api/memories/{memory}/sessions", json={}, timeout=30).json()[
            "session_id"
        ]
        for _ in range(sessions)
    ]
    ids_file.write_text("\n".join(ids) + "\n")
    return memory, root


def _wrk(
    url: str, ids: Path, root: str, seconds: float, threads: int, conns: int
) -> dict[str, Any]:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
           "-s", str(LUA), url, "--", str(ids), root, "w"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    return _parse_wrk(done.stdout)


def _serve(n: int, db: str, data: Path, logs: Path, port: int) -> Proc:
    p = Proc("api", db, data, logs / f"api{n}-{time.monotonic_ns()}.log", workers=n,
             port=port, env={"REWIND_LOG__LEVEL": "warning"})  # fmt: skip
    p.wait_listening(90)
    time.sleep(1.0 + 0.5 * n)  # every worker up (they bind the same port one by one)
    return p


def throughput(args: argparse.Namespace, db: str, data: Path, logs: Path) -> list[dict[str, Any]]:
    # The leader is a `--role all` process: its own API is today's single process (the
    # baseline), and it serves the replicas' demands and hit notes while they are measured.
    leader = Proc("all", db, data, logs / "leader.log", env={"REWIND_LOG__LEVEL": "warning"})
    ids = logs / "sessions.txt"
    targets = [("all", 1)] + [("api", n) for n in args.workers]
    runs: list[dict[str, Any]] = []
    try:
        leader.wait_listening(90)
        memory, root = _setup(leader.url, args.sessions, ids)
        for rep in range(args.repeats):
            for kind, n in targets if rep % 2 == 0 else list(reversed(targets)):
                port = leader.port if kind == "all" else free_port()
                proc = _serve(n, db, data, logs, port) if kind == "api" else None
                try:
                    url = f"http://127.0.0.1:{port}/api/memories/{memory}/chunks?inline=false"
                    _wrk(url, ids, root, args.warmup, args.threads, args.connections)
                    res = _wrk(url, ids, root, args.seconds, args.threads, args.connections)
                finally:
                    if proc is not None:
                        proc.stop()
                runs.append({"target": f"{kind} x{n}", "kind": kind, "processes": n,
                             "repeat": rep, **res})  # fmt: skip
                print(f"  {kind} x{n} rep {rep}: {res['rps']} req/s, p99 {res['p99_ms']} ms, "
                      f"non-2xx {res['non_2xx']}", flush=True)  # fmt: skip
    finally:
        leader.stop()
    return runs


def failovers(args: argparse.Namespace, db: str, data: Path, logs: Path) -> list[dict[str, Any]]:
    env = {"REWIND_LOG__LEVEL": "warning"}
    out: list[dict[str, Any]] = []
    leader = Proc("scheduler", db, data, logs / "fo-0.log", delay_s=args.gpu_delay, env=env)
    api = Proc("api", db, data, logs / "fo-api.log", env=env)
    actions = ["a", "d", "left", "right", "s", "up", "down", "w"]
    started = [leader]
    try:
        leader.wait_listening(90)
        api.wait_listening(90)
        body = httpx.post(
            f"{api.url}/api/memories?inline=false",
            json={"image_base64": base64.b64encode(SAMPLE.read_bytes()).decode()},
            timeout=120,
        ).json()
        memory, parent = body["memory_id"], body["chunk"]["chunk_id"]
        session = body["session_id"]
        for i in range(args.failovers):
            standby = Proc("scheduler", db, data, logs / f"fo-{i + 1}.log",
                           delay_s=args.gpu_delay, env=env)  # fmt: skip
            started.append(standby)
            time.sleep(2.0)  # the standby is polling the lock
            answer: dict[str, Any] = {}

            def ask(
                action: str = actions[i % len(actions)],
                parent: str = parent,
                answer: dict[str, Any] = answer,
            ) -> None:
                r = httpx.post(
                    f"{api.url}/api/memories/{memory}/chunks?inline=false",
                    json={"parent_chunk_id": parent, "action": action, "session_id": session},
                    timeout=120,
                )
                answer.update(status=r.status_code, at=time.monotonic(), body=r.json())

            t = threading.Thread(target=ask)
            t.start()
            time.sleep(args.gpu_delay / 2)  # mid-generation
            leader.kill9()
            killed = time.monotonic()
            serving = standby.wait_listening(60)
            t.join(120)
            out.append({
                "standby_answering_s": round(serving - killed, 3),
                "request_answered_s": round(answer.get("at", float("nan")) - killed, 3),
                "status": answer.get("status"), "outcome": answer.get("body", {}).get(
                    "chunk", {}).get("outcome"),
            })  # fmt: skip
            print(f"  failover {i + 1}: standby answering {out[-1]['standby_answering_s']} s, "
                  f"waiting request answered {out[-1]['request_answered_s']} s after kill -9 "
                  f"(status {out[-1]['status']})", flush=True)  # fmt: skip
            leader = standby
            if answer.get("status") == 200:
                parent = answer["body"]["chunk"]["chunk_id"]
    finally:
        for p in started:
            p.kill9()
        api.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--gpu-delay", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "replicas.json")
    args = parser.parse_args(argv)
    args.workers = [int(x) for x in args.workers.split(",")]
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="rewind-replicas-"))
    db, server = _database(tmp)
    data, logs = tmp / "data", tmp / "proc-logs"
    data.mkdir()
    logs.mkdir()
    try:
        print("hit throughput (wrk, closed loop):", flush=True)
        runs = throughput(args, db, data, logs)
        print("failover (kill -9 of the leader):", flush=True)
        fo = failovers(args, db, data, logs) if args.failovers else []
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary = []
    base = statistics.median(r["rps"] for r in runs if r["kind"] == "api" and r["processes"] == 1)
    for target in dict.fromkeys(r["target"] for r in runs):
        mine = [r for r in runs if r["target"] == target]
        rps = statistics.median(r["rps"] for r in mine)
        summary.append({"target": target, "rps_median": round(rps, 1),
                        "ratio_to_one_api": round(rps / base, 2),
                        "p99_ms_median": statistics.median(r["p99_ms"] for r in mine),
                        "non_2xx": sum(r["non_2xx"] for r in mine)})  # fmt: skip
    result = {
        "benchmark": "replicas", "cores": os.cpu_count(), "machine": platform.machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": summary, "runs": runs, "failovers": fo,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'target':<10} {'req/s':>9} {'x one api':>10} {'p99 ms':>8} {'non-2xx':>8}")
    for s in summary:
        print(f"{s['target']:<10} {s['rps_median']:>9} {s['ratio_to_one_api']:>10} "
              f"{s['p99_ms_median']:>8} {s['non_2xx']:>8}")  # fmt: skip
    if fo:
        sa = [f["standby_answering_s"] for f in fo]
        ra = [f["request_answered_s"] for f in fo]
        print(f"failover: standby answering median {statistics.median(sa):.2f} s "
              f"(max {max(sa):.2f}); waiting request answered median "
              f"{statistics.median(ra):.2f} s (max {max(ra):.2f}) after kill -9")  # fmt: skip
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
