"""Cache-hit path against a bare FastAPI floor, with wrk (closed loop) and hey (open loop).

Issue 10's targets on the hit path: a chunk the live state knows is ready is answered with no
database round trip (request rows written behind in batches). For each speculation policy
(``none``, ``markov``) this starts ``rewind serve`` on embedded defaults (a fresh data folder,
the embedded PostgreSQL, small chunks so set-up is quick), creates one memory and one ready child
(root + ``w``), opens N sessions (50 and 500; each starts at the root, so asking for root + ``w``
is a hit), captures one real hit response and starts ``benchmarks/bare_app.py`` with it: the same
uvicorn call, the same request/response models, no work. Then, side by side in the same run:

- throughput, closed loop: ``wrk -t1 -c50 -d<seconds>s --latency`` with
  ``benchmarks/wrk_hit.lua`` (POST, JSON body rotating through the N session ids), against the
  service and the bare app alternately (ABBA order over ``--repeats``), median req/s and the
  service/bare ratio; also CPU-seconds per request of the server process (and of the embedded
  PostgreSQL: a hit should cost it nothing) from /proc, which is less sensitive to other load
  on the machine than req/s;
- latency, open loop at the 500-viewer rate: ``hey`` at ~75 req/s offered for ``--hey-seconds``.
  hey sends one body per process, so ``--hey-procs`` processes run at once, each with its own
  session id, ``-c 50/procs -q 1.5`` each (1.5 req/s per worker: 50 x 1.5 = 75 req/s in all);
  per-request times come from ``-o csv`` and are merged for p50/p99. hey's ``-q`` is a ticker
  per worker and a process's workers start together, so the default is 50 processes of one
  worker each, launched 1 / (1.5 x 50) s apart: the 75 req/s arrive evenly spread, as 500
  independent viewers' requests would, instead of as bursts of 50 every 0.67 s (with
  ``--hey-procs 5`` they are bursts of 10, and p99 measures the time to drain one).
- a third wrk target, ``bare+mw``: the bare app plus a copy of the service's
  ``@app.middleware("http")`` request-context layer, to show what that layer alone costs.

After the load: ``/api/health`` must answer 200, and ``/api/analytics/hit-rates`` (which flushes
the write-behind queue first) must count at least every hit the load generators saw answered.
Client and server share the machine's cores (2 here, shared with other work), so figures are
medians of repeats and ratios are measured side by side. Loopback only, every run bounded.

Usage: ``uv run python benchmarks/hits.py [--seconds 10] [--out benchmarks/results/hits.json]``
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "orchestrator" / "assets" / "astronaut.jpg"
LUA = Path(__file__).resolve().parent / "wrk_hit.lua"
BARE = Path(__file__).resolve().parent / "bare_app.py"
ACTION = "w"
TICK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_health(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(proc)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start on port {port}:\n{tail}")


def _start_service(data_dir: Path, port: int, policy: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = {
        **os.environ,
        "REWIND_SERVER__DATA_DIR": str(data_dir),
        "REWIND_GENERATION__FRAMES": "33",
        "REWIND_GENERATION__WIDTH": "320",
        "REWIND_GENERATION__HEIGHT": "180",
        "REWIND_GENERATION__ROOT_POSE": "w-8",
        "REWIND_SPECULATION__POLICY": policy,
        "REWIND_LOG__LEVEL": "warning",
    }
    env.pop("DATABASE_URL", None)
    log = data_dir.parent / f"service-{policy}.log"
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    _wait_health(port, proc, f"rewind serve (policy {policy})", log)
    return proc, log


def _start_bare(
    fixture: Path, port: int, middleware: bool = False
) -> tuple[subprocess.Popen[bytes], Path]:
    env = {**os.environ, "REWIND_BARE_FIXTURE": str(fixture)}
    log = fixture.parent / f"bare{'-mw' if middleware else ''}.log"
    cmd = [sys.executable, str(BARE), "--port", str(port)] + (
        ["--middleware"] if middleware else []
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    _wait_health(port, proc, "bare app", log)
    return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- CPU accounting from /proc -------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime + stime in seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _tree_cpu(root_pids: list[int]) -> float:
    """CPU-seconds used so far by ``root_pids`` and all their descendants (live ones)."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                table[int(entry.name)] = st
    wanted = set(p for p in root_pids if p in table)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                grew = True
    return sum(table[p][1] for p in wanted)


def _postmaster_pids(data_dir: Path) -> list[int]:
    """The embedded PostgreSQL's postmaster (its command line names the data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) in cmdline and "postgres" in cmdline and "orchestrator" not in cmdline:
            found.append(int(entry.name))
    return found


# --- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def _parse_wrk(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    res["requests"] = int(m.group(1)) if m else None
    res["duration_ms"] = _ms(m.group(2)) if m else None
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+\w+)", out, re.M)
        res[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def _wrk(
    url: str,
    ids_file: Path,
    parent: str,
    seconds: float,
    threads: int,
    connections: int,
    cpu_pids: dict[str, list[int]],
) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
        "--",
        str(ids_file),
        parent,
        ACTION,
    ]
    before = {k: _tree_cpu(v) for k, v in cpu_pids.items()}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    wall = time.perf_counter() - t0
    after = {k: _tree_cpu(v) for k, v in cpu_pids.items()}
    res = _parse_wrk(done.stdout)
    res["rc"] = done.returncode
    res["wall_s"] = round(wall, 3)
    res["loadavg_1m_before"] = load0
    res["cpu_s"] = {k: round(after[k] - before[k], 3) for k in cpu_pids}
    n = res.get("requests") or 0
    res["cpu_ms_per_request"] = {
        k: round(1000 * (after[k] - before[k]) / n, 4) if n else None for k in cpu_pids
    }
    res["server_cpu_util"] = round((after["server"] - before["server"]) / wall, 3)
    if done.returncode != 0 or res["rps"] is None:
        res["stdout"], res["stderr"] = done.stdout[-2000:], done.stderr[-2000:]
    return res


# --- hey --------------------------------------------------------------------------------------


def _hey(
    url: str,
    session_ids: list[str],
    parent: str,
    seconds: float,
    procs: int,
    workers: int,
    qps: float,
    tmp: Path,
    cpu_pids: dict[str, list[int]],
) -> dict[str, Any]:
    per = max(1, workers // procs)
    before = {k: _tree_cpu(v) for k, v in cpu_pids.items()}
    running = []
    for k in range(procs):
        body = tmp / f"hey-body-{k}.json"
        sid = session_ids[k % len(session_ids)]
        body.write_text(
            json.dumps({"parent_chunk_id": parent, "action": ACTION, "session_id": sid})
        )
        cmd = [
            "hey",
            "-z",
            f"{seconds:g}s",
            "-c",
            str(per),
            "-q",
            f"{qps:g}",
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body),
            "-t",
            "10",
            "-o",
            "csv",
            url,
        ]
        running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        # Spread the processes' tickers over one tick, so requests arrive evenly, not in bursts.
        time.sleep(1.0 / (qps * procs))
    latencies: list[float] = []
    codes: dict[str, int] = {}
    t0 = time.perf_counter()
    for p in running:
        out, _ = p.communicate(timeout=seconds + 60)
        for row in csv.DictReader(io.StringIO(out.decode(errors="replace"))):
            try:
                latencies.append(float(row["response-time"]) * 1000)
                code = row["status-code"]
            except (KeyError, ValueError):
                continue
            codes[code] = codes.get(code, 0) + 1
    wall = time.perf_counter() - t0
    after = {k: _tree_cpu(v) for k, v in cpu_pids.items()}
    latencies.sort()
    n = len(latencies)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if n > 1 else latencies * 99
    ok = sum(v for c, v in codes.items() if c.startswith("2"))
    return {
        "procs": procs,
        "workers_per_proc": per,
        "qps_per_worker": qps,
        "offered_rps": procs * per * qps,
        "session_ids": [session_ids[k % len(session_ids)] for k in range(procs)],
        "requests": n,
        "achieved_rps": round(n / seconds, 1),
        "status_codes": codes,
        "errors": n - ok,
        "p50_ms": round(q[49], 3) if n else None,
        "p90_ms": round(q[89], 3) if n else None,
        "p99_ms": round(q[98], 3) if n else None,
        "max_ms": round(latencies[-1], 3) if n else None,
        "wall_s": round(wall, 3),
        "cpu_s": {k: round(after[k] - before[k], 3) for k in cpu_pids},
        "server_cpu_util": round((after["server"] - before["server"]) / wall, 3),
        "cpu_ms_per_request": {
            k: round(1000 * (after[k] - before[k]) / n, 4) if n else None for k in cpu_pids
        },
    }


# --- the run ----------------------------------------------------------------------------------


def _setup(base: str, n_sessions: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=300) as client:
        image = base64.b64encode(SAMPLE.read_bytes()).decode()
        r = client.post("/api/memories?inline=false", json={"image_base64": image})
        r.raise_for_status()
        created = r.json()
        memory_id, root = created["memory_id"], created["chunk"]["chunk_id"]
        t0 = time.perf_counter()
        r = client.post(
            f"/api/memories/{memory_id}/chunks?inline=false",
            json={"parent_chunk_id": root, "action": ACTION},
        )
        r.raise_for_status()
        child = r.json()["chunk"]
        child_s = time.perf_counter() - t0
        sessions = []
        t0 = time.perf_counter()
        for _ in range(n_sessions):
            r = client.post(f"/api/memories/{memory_id}/sessions", json={})
            r.raise_for_status()
            sessions.append(r.json()["session_id"])
        sessions_s = time.perf_counter() - t0
        # One real hit, from a session at the root: the fixture the bare app answers with.
        r = client.post(
            f"/api/memories/{memory_id}/chunks?inline=false",
            json={"parent_chunk_id": root, "action": ACTION, "session_id": sessions[0]},
        )
        r.raise_for_status()
        hit = r.json()
        if hit["chunk"]["outcome"] != "hit" or hit["chunk"]["chunk_id"] != child["chunk_id"]:
            raise RuntimeError(f"expected a hit on {child['chunk_id']}, got {hit['chunk']}")
    return {
        "memory_id": memory_id,
        "root": root,
        "child": child["chunk_id"],
        "child_outcome": child["outcome"],
        "child_s": round(child_s, 3),
        "sessions": sessions,
        "sessions_s": round(sessions_s, 3),
        "hit_fixture": hit,
    }


def _median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def _run_policy(policy: str, args: argparse.Namespace, tmp_root: Path) -> dict[str, Any]:
    tmp = tmp_root / policy
    tmp.mkdir()
    data_dir = tmp / "data"
    port, bare_port, mw_port = _free_port(), _free_port(), _free_port()
    print(f"[{policy}] starting rewind serve on :{port}", flush=True)
    svc, svc_log = _start_service(data_dir, port, policy)
    bare: subprocess.Popen[bytes] | None = None
    bare_mw: subprocess.Popen[bytes] | None = None
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"policy": policy, "service_pid": svc.pid}
    sent_ok = 0  # 2xx hits the load generators saw answered by the service
    try:
        setup = _setup(base, max(args.levels))
        sent_ok += 1
        mid, root = setup["memory_id"], setup["root"]
        out["setup"] = {k: v for k, v in setup.items() if k != "sessions"}
        print(
            f"[{policy}] memory {mid}, child {setup['child_outcome']} in {setup['child_s']} s, "
            f"{len(setup['sessions'])} sessions in {setup['sessions_s']} s",
            flush=True,
        )
        fixture = tmp / "hit.json"
        fixture.write_text(json.dumps(setup["hit_fixture"]))
        bare, _ = _start_bare(fixture, bare_port)
        if args.middleware_variant:
            bare_mw, _ = _start_bare(fixture, mw_port, middleware=True)
        pg = _postmaster_pids(data_dir)
        out["postmaster_pids"] = pg
        path = f"/api/memories/{mid}/chunks?inline=false"
        targets = {
            "service": (f"{base}{path}", {"server": [svc.pid], "postgres": pg}),
            "bare": (f"http://127.0.0.1:{bare_port}{path}", {"server": [bare.pid]}),
        }
        if bare_mw is not None:
            targets["bare+mw"] = (f"http://127.0.0.1:{mw_port}{path}", {"server": [bare_mw.pid]})
        names = list(targets)
        wrk_runs: list[dict[str, Any]] = []
        for n in args.levels:
            ids = tmp / f"ids-{n}.txt"
            ids.write_text("\n".join(setup["sessions"][:n]) + "\n")
            for name, (url, pids) in targets.items():  # warm-up, not recorded
                w = _wrk(url, ids, root, args.warmup, args.threads, args.connections, pids)
                if name == "service":
                    sent_ok += (w["requests"] or 0) - w["non_2xx"]
            for rep in range(args.repeats):
                order = names[rep % len(names) :] + names[: rep % len(names)]
                if rep % 2:
                    order.reverse()
                for name in order:
                    url, pids = targets[name]
                    r = _wrk(url, ids, root, args.seconds, args.threads, args.connections, pids)
                    r.update(target=name, sessions=n, rep=rep)
                    wrk_runs.append(r)
                    if name == "service":
                        sent_ok += (r["requests"] or 0) - r["non_2xx"]
                    print(
                        f"[{policy}] {n:>3} sessions rep {rep} {name:<7} {r['rps'] or 0:8.0f} req/s"
                        f"  p50 {r['p50_ms'] or 0:6.2f} ms  p99 {r['p99_ms'] or 0:6.2f} ms"
                        f"  non-2xx {r['non_2xx']}  server CPU {r['server_cpu_util']:.2f}"
                        f"  {r['cpu_ms_per_request']}",
                        flush=True,
                    )
        out["wrk"] = wrk_runs
        hey_runs: list[dict[str, Any]] = []
        n = max(args.levels)
        for rep in range(args.hey_repeats):
            order = ["service", "bare"] if rep % 2 == 0 else ["bare", "service"]
            for name in order:
                url, pids = targets[name]
                h = _hey(
                    url,
                    setup["sessions"][:n],
                    root,
                    args.hey_seconds,
                    args.hey_procs,
                    args.hey_workers,
                    args.hey_qps,
                    tmp,
                    pids,
                )
                h.update(target=name, sessions=n, rep=rep)
                hey_runs.append(h)
                if name == "service":
                    sent_ok += h["requests"] - h["errors"]
                print(
                    f"[{policy}] hey {name:<7} offered {h['offered_rps']:.0f} req/s, achieved "
                    f"{h['achieved_rps']} req/s  p50 {h['p50_ms']} ms  p99 {h['p99_ms']} ms  "
                    f"errors {h['errors']} {h['status_codes']}  server CPU "
                    f"{h['server_cpu_util']:.2f} {h['cpu_ms_per_request']}",
                    flush=True,
                )
        out["hey"] = hey_runs
        # After the load: alive, and the rows written behind reached the database.
        with httpx.Client(base_url=base, timeout=60) as client:
            health = client.get("/api/health")
            t0 = time.perf_counter()
            rates = client.get("/api/analytics/hit-rates", params={"group_by": "policy"})
            rates_s = time.perf_counter() - t0
        rows = rates.json().get("request_rates", []) if rates.status_code == 200 else []
        hits = sum(int(r.get("hits") or 0) for r in rows)
        requests = sum(int(r.get("requests") or 0) for r in rows)
        out["after"] = {
            "health_status": health.status_code,
            "health": health.json() if health.status_code == 200 else health.text[:500],
            "hit_rates_status": rates.status_code,
            "hit_rates_s": round(rates_s, 3),
            "request_rates": rows,
            "db_requests": requests,
            "db_hits": hits,
            "hits_answered_2xx": sent_ok,
            # wrk stops counting at its deadline: a few requests the server answered are not in
            # its count, so the database may hold slightly more than the load generators saw.
            "hits_reached_db": hits >= sent_ok,
        }
        print(
            f"[{policy}] after: health {health.status_code}; hit-rates {rates.status_code} "
            f"in {rates_s:.2f} s: {hits} hits / {requests} requests in the database, "
            f"{sent_ok} hits answered 2xx to the load generators",
            flush=True,
        )
        if args.profile_seconds > 0:
            out["profile"] = _profile(
                svc.pid, targets["service"][0], tmp, root, setup["sessions"], args, policy
            )
    finally:
        for p in (bare, bare_mw):
            if p is not None:
                _stop(p)
        t_stop = time.perf_counter()
        _stop(svc)
        out["service_stop_s"] = round(time.perf_counter() - t_stop, 2)
        deadline = time.monotonic() + 30  # the embedded PostgreSQL stops with the service
        left = out.get("postmaster_pids", [])
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = [p for p in left if _stat(p) is not None]
        out["postgres_stop_s"] = round(time.perf_counter() - t_stop, 2)
        out["postgres_left_running"] = left
        out["service_log_tail"] = svc_log.read_text(errors="replace")[-4000:]
    return out


_CATEGORIES = [  # (pattern, name): stack-wide first (background tasks), then leaf-most frame
    ("WriteBehind", "write-behind flush"),
    ("_plan_loop", "scheduler plan loop"),
    ("plan_once", "scheduler plan loop"),
]
_LEAF_CATEGORIES = [
    ("post_chunk (orchestrator", "endpoint post_chunk (service logic)"),
    ("request_context (orchestrator", "request_context middleware body"),
    ("solve_dependencies", "fastapi dependencies / validation"),
    ("api_fast.py", "lean route handler (api_fast: parse, caller)"),
    ("serialize_response", "response serialization"),
    ("middleware/base.py", "BaseHTTPMiddleware machinery"),
    ("http_guard", "http guards (ASGI)"),
    ("routing.py", "routing / fastapi handler"),
    ("httptools_impl", "uvicorn http protocol"),
]


def _categorize(stack: str) -> str:
    for pat, name in _CATEGORIES:
        if pat in stack:
            return name
    for frame in reversed(stack.split(";")):
        for pat, name in _LEAF_CATEGORIES:
            if pat in frame:
                return name
    return "other (event loop, ASGI stack)"


def _read_profile(raw: Path) -> dict[str, Any]:
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    cats: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + c
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + c
        k = _categorize(stack)
        cats[k] = cats.get(k, 0) + c

    def top(d: dict[str, int], k: int = 25) -> list[list[Any]]:
        ranked = sorted(d.items(), key=lambda x: -x[1])[:k]
        return [[f, round(100 * c / max(total, 1), 1)] for f, c in ranked]

    return {
        "samples": total,
        "categories_pct": top(cats, 20),
        "top_own_pct": top(own),
        "top_inclusive_pct": top(inclusive, 60),
    }


def _profile(
    pid: int,
    url: str,
    tmp: Path,
    root: str,
    sessions: list[str],
    args: argparse.Namespace,
    policy: str,
) -> dict[str, Any]:
    """py-spy record of the service: under wrk (saturated) and under hey (~75 req/s offered)."""
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        return {"error": "py-spy not on PATH (run with: uv run --with py-spy python ...)"}
    ids = tmp / f"ids-{max(args.levels)}.txt"
    out: dict[str, Any] = {}
    for mode in ("wrk", "hey"):
        raw = tmp / f"profile-{mode}.txt"
        cmd = [pyspy, "record", "--pid", str(pid), "--duration", f"{args.profile_seconds:g}"]
        cmd += ["--format", "raw", "--output", str(raw), "--nonblocking", "--rate", "200"]
        spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(1)
        load_s = max(1.0, args.profile_seconds - 2)
        pids = {"server": [pid]}
        if mode == "wrk":
            _wrk(url, ids, root, load_s, args.threads, args.connections, pids)
        else:
            _hey(url, sessions, root, load_s, args.hey_procs, args.hey_workers, args.hey_qps, tmp,
                 pids)  # fmt: skip
        spy.communicate(timeout=args.profile_seconds + 60)
        if not raw.exists():
            out[mode] = {"error": "py-spy wrote nothing (ptrace not permitted?)"}
            continue
        keep = Path(args.out).parent / f"hits-profile-{policy}-{mode}.txt"
        shutil.copyfile(raw, keep)
        out[mode] = {"raw_file": str(keep), **_read_profile(raw)}
        print(f"[{policy}] py-spy under {mode}: {out[mode]['categories_pct'][:6]}", flush=True)
    return out


def _summary(policies: list[dict[str, Any]], levels: list[int]) -> list[dict[str, Any]]:
    rows = []
    for p in policies:
        for n in levels:
            svc = [r for r in p.get("wrk", []) if r["target"] == "service" and r["sessions"] == n]
            bare = [r for r in p.get("wrk", []) if r["target"] == "bare" and r["sessions"] == n]
            mw = [r for r in p.get("wrk", []) if r["target"] == "bare+mw" and r["sessions"] == n]

            def ratios(xs: list[dict[str, Any]], ys: list[dict[str, Any]]) -> list[float]:
                return [
                    x["rps"] / y["rps"]
                    for x in xs
                    for y in ys
                    if x["rep"] == y["rep"] and x["rps"] and y["rps"]
                ]

            pairs = ratios(svc, bare)
            rows.append(
                {
                    "policy": p["policy"],
                    "sessions": n,
                    "service_rps": _median([r["rps"] for r in svc]),
                    "bare_rps": _median([r["rps"] for r in bare]),
                    "ratio": _median(pairs),
                    "ratios_per_rep": [round(x, 3) for x in pairs],
                    "bare_mw_rps": _median([r["rps"] for r in mw]),
                    "bare_mw_over_bare": _median(ratios(mw, bare)),
                    "service_over_bare_mw": _median(ratios(svc, mw)),
                    "bare_mw_cpu_ms_per_req": _median(
                        [r["cpu_ms_per_request"]["server"] for r in mw]
                    ),
                    "service_p50_ms": _median([r["p50_ms"] for r in svc]),
                    "service_p99_ms": _median([r["p99_ms"] for r in svc]),
                    "bare_p50_ms": _median([r["p50_ms"] for r in bare]),
                    "bare_p99_ms": _median([r["p99_ms"] for r in bare]),
                    "service_non_2xx": sum(r["non_2xx"] + r["socket_errors"] for r in svc),
                    "service_cpu_ms_per_req": _median(
                        [r["cpu_ms_per_request"]["server"] for r in svc]
                    ),
                    "postgres_cpu_ms_per_req": _median(
                        [r["cpu_ms_per_request"].get("postgres") for r in svc]
                    ),
                    "bare_cpu_ms_per_req": _median(
                        [r["cpu_ms_per_request"]["server"] for r in bare]
                    ),
                }
            )
    return rows


def _hey_summary(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in policies:
        for name in ("service", "bare"):
            hs = [h for h in p.get("hey", []) if h["target"] == name]
            if not hs:
                continue
            rows.append(
                {
                    "policy": p["policy"],
                    "target": name,
                    "sessions": hs[0]["sessions"],
                    "offered_rps": hs[0]["offered_rps"],
                    "achieved_rps": _median([h["achieved_rps"] for h in hs]),
                    "p50_ms": _median([h["p50_ms"] for h in hs]),
                    "p99_ms": _median([h["p99_ms"] for h in hs]),
                    "max_ms": max(h["max_ms"] or 0 for h in hs),
                    "errors": sum(h["errors"] for h in hs),
                    "server_cpu_util": _median([h.get("server_cpu_util") for h in hs]),
                    "requests": sum(h["requests"] for h in hs),
                }
            )
    return rows


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (
        (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr) else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each wrk run (s)")
    parser.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up per target (s)")
    parser.add_argument("--repeats", type=int, default=3, help="wrk runs per target and level")
    parser.add_argument("--levels", default="50,500", help="session counts")
    parser.add_argument("--policies", default="none,markov")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--hey-seconds", type=float, default=15.0)
    parser.add_argument("--hey-repeats", type=int, default=1)
    parser.add_argument("--hey-procs", type=int, default=50, help="hey processes (1 session each)")
    parser.add_argument("--hey-workers", type=int, default=50, help="hey -c in all")
    parser.add_argument("--hey-qps", type=float, default=1.5, help="hey -q (per worker)")
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=0.0,
        help="also py-spy the service this long under wrk (needs py-spy)",
    )
    parser.add_argument(
        "--no-middleware-variant",
        dest="middleware_variant",
        action="store_false",
        help="skip the third wrk target: the bare app plus a copy of the "
        "service's @app.middleware('http') layer",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hits.json"))
    args = parser.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install -y wrk hey")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = {
        "loadavg_at_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": _version(["wrk", "-v"]),
        "hey": "hey (Debian package)",
    }
    commands = {
        "service": f"{sys.executable} -m orchestrator serve --port P (env: REWIND_SERVER__DATA_DIR"
        "=<fresh>, REWIND_GENERATION__FRAMES=33, WIDTH=320, HEIGHT=180, ROOT_POSE=w-8, "
        "REWIND_SPECULATION__POLICY=<policy>, REWIND_LOG__LEVEL=warning, no DATABASE_URL)",
        "bare": f"REWIND_BARE_FIXTURE=<hit.json> {sys.executable} benchmarks/bare_app.py --port P",
        "bare+mw": f"REWIND_BARE_FIXTURE=<hit.json> {sys.executable} benchmarks/bare_app.py "
        "--port P --middleware",
        "wrk": f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s --latency "
        "--timeout 5s "
        f"-s benchmarks/wrk_hit.lua http://127.0.0.1:P/api/memories/<id>/chunks?inline=false "
        f"-- <ids-N.txt> <root> {ACTION}",
        "hey": f"{args.hey_procs} x hey -z {args.hey_seconds:g}s -c "
        f"{max(1, args.hey_workers // args.hey_procs)} -q {args.hey_qps:g} -m POST "
        "-T application/json -D <body-k.json> -t 10 -o csv URL (one session id per process)",
        "argv": sys.argv,
    }
    print(f"load average at start: {machine['loadavg_at_start']}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="rewind-hits-") as tmp:
        for policy in args.policies.split(","):
            results.append(_run_policy(policy, args, Path(tmp)))
    summary = _summary(results, args.levels)
    hey_summary = _hey_summary(results)
    machine["loadavg_at_end"] = os.getloadavg()
    doc = {
        "benchmark": "cache-hit path: rewind serve vs bare FastAPI on the same uvicorn",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "machine": machine,
        "commands": commands,
        "summary_wrk": summary,
        "summary_hey_75rps": hey_summary,
        "policies": results,
    }
    args.out.write_text(json.dumps(doc, indent=2))
    print()
    print("closed loop (wrk, median of repeats; ratio = median of per-repeat service/bare)")
    print(
        f"{'policy':<8}{'sess':>5}{'service r/s':>13}{'bare r/s':>10}{'ratio':>7}"
        f"{'svc p50':>9}{'svc p99':>9}{'svc CPU ms/req':>16}{'pg ms/req':>11}{'bare CPU':>10}"
        f"{'non2xx':>8}{'bare+mw r/s':>13}{'mw/bare':>9}{'mw CPU':>8}"
    )
    for r in summary:
        print(
            f"{r['policy']:<8}{r['sessions']:>5}{r['service_rps'] or 0:>13.0f}"
            f"{r['bare_rps'] or 0:>10.0f}{r['ratio'] or 0:>7.2f}{r['service_p50_ms'] or 0:>9.2f}"
            f"{r['service_p99_ms'] or 0:>9.2f}{r['service_cpu_ms_per_req'] or 0:>16.3f}"
            f"{r['postgres_cpu_ms_per_req'] or 0:>11.3f}{r['bare_cpu_ms_per_req'] or 0:>10.3f}"
            f"{r['service_non_2xx']:>8}{r['bare_mw_rps'] or 0:>13.0f}"
            f"{r['bare_mw_over_bare'] or 0:>9.2f}{r['bare_mw_cpu_ms_per_req'] or 0:>8.3f}"
        )
    print()
    offered = args.hey_procs * max(1, args.hey_workers // args.hey_procs) * args.hey_qps
    print(
        f"open loop (hey, ~{offered:g}"
        f" req/s offered, {max(args.levels)} sessions open, {args.hey_procs} of them sending)"
    )
    print(
        f"{'policy':<8}{'target':<9}{'achieved r/s':>13}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'errors':>8}{'requests':>10}"
    )
    for r in hey_summary:
        print(
            f"{r['policy']:<8}{r['target']:<9}{r['achieved_rps'] or 0:>13.1f}"
            f"{r['p50_ms'] or 0:>9.2f}"
            f"{r['p99_ms'] or 0:>9.2f}{r['max_ms'] or 0:>9.2f}{r['errors']:>8}{r['requests']:>10}"
        )
    print()
    for p in results:
        a = p.get("after", {})
        print(
            f"{p['policy']}: health {a.get('health_status')}, hit-rates {a.get('hit_rates_status')}"
            f", db hits {a.get('db_hits')} >= answered {a.get('hits_answered_2xx')}: "
            f"{a.get('hits_reached_db')}; postgres left running: {p.get('postgres_left_running')}"
        )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
