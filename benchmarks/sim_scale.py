"""The simulator at scale: a 3,000-session, ~57,000-step trace, five policies (issue 10 target:
<= 60 s on 2 cores, memory flat in trace length).

Usage::

    uv run python benchmarks/sim_scale.py [--sessions 3000] [--regime short] [--workers 2]
        [--baseline-rev REV] [--layout round-robin|blocked]
        [--out benchmarks/results/sim_scale.json]

The summary ends with each policy's peak RSS, half trace -> full trace. ``--layout blocked``
replays the same sessions with each memory's viewers one after another (``write_layout``): in
the default layout every memory is visited again across the whole trace, so the chunks the
simulated store keeps for the next visit grow with the trace: on disk, in the engine's spill
file, once the live state has evicted the memory (``orchestrator.sim.cold_store``;
``benchmarks/sim_memory.py`` shows what stays in RAM with tracemalloc); blocked, a memory's
chunks are dropped after its last arrival.

The trace is synthetic (``rewind traces synth`` knobs), shaped like the real trace the issue
replayed: mostly forward, ~19 steps per session, Poisson arrivals at a rate that keeps about 20
sessions active at once. Each policy runs in its own process (``--workers`` at a time, like
``rewind simulate``); per run the benchmark records wall and CPU seconds (the machine is
shared: wall seconds depend on its load), the seconds spent preparing the core's input
(proposals included) and in ``plan()``, the number of plans, the process's peak RSS (MiB) and
the entries the policy keeps per session / memory at the end. It runs the same policies on half
the trace too: "flat" means the peak RSS of the full trace is close to that of the half (the
state is bounded by the active sessions, not by the sessions seen so far). The runs stream the
trace (``orchestrator.sim.trace_file.open_trace``: a session is read when its arrival is due and
dropped when it ends; ``held`` is the most session traces a run held at once).

Policies are started most expensive first (``COST_ORDER``), so that with 2 workers the long
runs overlap instead of the last one running alone; the table keeps ``--policies``' order. The
runs keep no per-request records (``Simulation(records=False)``: the metrics are streamed), and
each reports its summary (``orchestrator.sim.metrics.summarize``).

``--baseline-rev REV`` also replays the full trace with the simulator of git revision ``REV``
(checked out into a temporary worktree; with ``records=False`` where that revision has it, as
ours run), the same policies ``--workers`` at a time, for the
side-by-side ratios of wall and CPU seconds; bounded by ``--baseline-timeout`` seconds per policy
(a baseline that times out is reported as such). Each baseline run's summary is compared with
ours field by field ("results: identical" or the fields that differ; timings aside).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.sim.regime import load_regime  # noqa: E402
from orchestrator.sim.run import build_policy  # noqa: E402
from orchestrator.sim.synth import SynthKnobs, synthesize, write_synthetic  # noqa: E402
from orchestrator.sim.trace import write_trace  # noqa: E402
from orchestrator.sim.trace_file import open_trace  # noqa: E402

POLICIES = ("none", "uniform", "markov", "lookahead", "oracle")
COST_ORDER = ("lookahead", "uniform", "markov", "oracle", "none")
"""Most expensive first (CPU seconds measured on main, 2026-12-02): the order runs start in."""
RESULTS = _HERE / "results"
ROOT = _HERE.parent

_BASELINE_SCRIPT = """
import json, resource, sys, time
from orchestrator.sim.engine import Simulation
from orchestrator.sim.metrics import summarize
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import build_policy
regime = load_regime(sys.argv[2])
try:  # streamed, as ours run (older revisions read the whole trace)
    from orchestrator.sim.trace_file import open_trace
    trace = open_trace(sys.argv[1]); whole = None
except ImportError:
    from orchestrator.sim.trace import read_trace
    trace = whole = read_trace(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
policy = build_policy(sys.argv[3], regime, whole)
try:  # streamed metrics, as ours run (older revisions keep every record: no such argument)
    sim = Simulation(trace, regime, policy, 0, records=False)
except TypeError:
    sim = Simulation(trace, regime, policy, 0)
result = sim.run()
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "summary": summarize(result, regime),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def knobs(sessions: int) -> SynthKnobs:
    """~19 steps a session, think ~1.5 s, arrivals keeping ~20 sessions active (short regime:
    a session lasts ~19 x (2.5 s chunk + 1.5 s think + waits) ~ 100-150 s)."""
    return SynthKnobs(sessions=sessions, sessions_per_memory=3.0, arrival_rate_per_s=0.07,
                      steps_min=12, steps_max=26, persistence=0.6, turn_bias=0.25,
                      think_mean_s=1.5, think_cv=0.5, seed=7)  # fmt: skip


LAYOUTS = ("round-robin", "blocked")


def write_layout(path: Path, sessions: int, layout: str = "round-robin") -> None:
    """The benchmark's trace of ``sessions`` sessions. ``round-robin``: as synthesized (session
    i on memory i mod M: every memory is visited again across the whole trace, so the chunks
    kept for its next visit, ``Simulation.books``, grow with the trace, as a database would;
    the engine spills them to disk once the live state evicted the memory);
    ``blocked``: the same sessions, each memory's viewers one after another (memory i div 3), so
    a memory's chunks are dropped after its last arrival and what grows is the replay's own."""
    if layout == "round-robin":
        write_synthetic(path, knobs(sessions))
        return
    k = knobs(sessions)
    per = k.sessions_per_memory
    items = [replace(s, memory=f"m{int(i // per):04d}") for i, s in enumerate(synthesize(k))]
    write_trace(path, items, {"generator": "benchmarks/sim_scale.py", "layout": layout})


def run_policy(trace_path: str, regime_name: str, policy: str) -> dict[str, Any]:
    """One policy over the trace in a fresh process; timings, peak RSS and the summary."""
    from orchestrator.sim.engine import Simulation
    from orchestrator.sim.metrics import summarize

    regime = load_regime(regime_name)
    t0, c0 = time.perf_counter(), time.process_time()
    trace = open_trace(trace_path)  # streamed; the oracle is told each future as it arrives
    sim = Simulation(trace, regime, build_policy(policy, regime), 0, records=False)
    result = sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    summary = summarize(result, regime)
    return {
        "policy": policy, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "policy_state": _policy_state(sim.policy),
        "prepare_s": round(result.propose_wall_s, 2), "plan_s": round(result.plan_wall_s, 2),
        "plans": result.plans, "requests": summary["requests"] + summary["root_requests"],
        "jobs": summary["jobs"], "peak_active_sessions": result.peak_sessions,
        "peak_held_sessions": sim.peak_held,
        "proposals_asked": sim.live.proposals.asked,
        "proposals_reused": sim.live.proposals.reused,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_state": sim.live.size(), "summary": summary,
    }  # fmt: skip


def _policy_state(policy: Any) -> dict[str, int]:
    """Entries a policy keeps per session / memory at the end of the run (flatness check)."""
    base = getattr(policy, "base", policy)
    out = {}
    for label, attr in (("sessions", "_session"), ("memories", "_memory"), ("cold", "_cold"),
                        ("future", "future")):  # fmt: skip
        table = getattr(base, attr, None)
        if table is not None:
            out[label] = len(table)
    return out


def start_order(policies: tuple[str, ...]) -> list[str]:
    """``policies`` most expensive first (``COST_ORDER``; others after, in their order)."""
    known = [p for p in COST_ORDER if p in policies]
    return known + [p for p in policies if p not in known]


def run_all(
    trace_path: Path, regime: str, workers: int, policies: tuple[str, ...] = POLICIES
) -> tuple[float, list[dict[str, Any]]]:
    """Every policy, ``workers`` processes at a time (a fresh process per policy), started
    most expensive first; the runs in ``policies``' order."""
    order = start_order(policies)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        runs = list(pool.map(run_policy, [str(trace_path)] * len(order),
                             [regime] * len(order), order))  # fmt: skip
    by_name = dict(zip(order, runs, strict=True))
    return time.perf_counter() - t0, [by_name[p] for p in policies]


def _baseline_run(
    wt: str, trace_path: str, regime: str, policy: str, timeout_s: float
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": wt}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _BASELINE_SCRIPT, trace_path, regime, policy],
            env=env, capture_output=True, text=True, timeout=timeout_s, cwd=wt,
        )  # fmt: skip
        run = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        run = {"timeout_s": timeout_s}
    except (IndexError, json.JSONDecodeError):
        run = {"error": proc.stderr.strip().splitlines()[-1:]}
    return {"policy": policy, **run}


def baseline(
    rev: str, trace_path: Path, regime: str, timeout_s: float, workers: int,
    policies: tuple[str, ...] = POLICIES,
) -> dict[str, Any]:  # fmt: skip
    """The simulator of git revision ``rev`` on the same trace, ``workers`` policies at a time
    (most expensive first, as ours); total wall seconds and the runs in ``policies``' order."""
    out: dict[str, Any] = {"rev": rev, "runs": []}
    order = start_order(policies)
    with tempfile.TemporaryDirectory(prefix="rewind-baseline-") as tmp:
        wt = Path(tmp) / "wt"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt), rev],
                       check=True)  # fmt: skip
        try:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=workers) as pool:  # each run is a subprocess
                runs = list(pool.map(_baseline_run, [str(wt)] * len(order),
                                     [str(trace_path)] * len(order), [regime] * len(order),
                                     order, [timeout_s] * len(order)))  # fmt: skip
            out["total_wall_s"] = round(time.perf_counter() - t0, 1)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           check=False)  # fmt: skip
    by_name = {r["policy"]: r for r in runs}
    out["runs"] = [by_name[p] for p in policies]
    return out


def differing(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The summary fields whose values differ (``plans`` included; nested dicts compared whole)."""
    keys = sorted(set(ours) | set(theirs))
    return [k for k in keys if ours.get(k) != theirs.get(k)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--regime", default="short")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--layout", choices=LAYOUTS, default="round-robin",
                        help="memories of the sessions (write_layout)")  # fmt: skip
    parser.add_argument("--baseline-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_scale.json")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated subset (default: all five)")  # fmt: skip
    args = parser.parse_args(argv)
    policies = tuple(args.policies.split(","))
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
    }
    report: dict[str, Any] = {"machine": machine, "layout": args.layout}
    with tempfile.TemporaryDirectory() as tmp:
        traces = {}
        for label, n in (("half", args.sessions // 2), ("full", args.sessions)):
            path = Path(tmp) / f"{label}.jsonl"
            write_layout(path, n, args.layout)
            steps = open_trace(path).step_count
            traces[label] = path
            total, runs = run_all(path, args.regime, args.workers, policies)
            report[label] = {"sessions": n, "steps": steps, "total_wall_s": round(total, 1),
                             "total_cpu_s": round(sum(r["cpu_s"] for r in runs), 1),
                             "runs": runs}  # fmt: skip
        if args.baseline_rev:
            base = baseline(args.baseline_rev, traces["full"], args.regime,
                            args.baseline_timeout, args.workers, policies)  # fmt: skip
            report["baseline"] = base
            ours = {r["policy"]: r for r in report["full"]["runs"]}
            for b in base["runs"]:
                if "summary" in b:
                    b["differs"] = differing(ours[b["policy"]]["summary"], b.pop("summary"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _summary(report)
    return 0


def _summary(report: dict[str, Any]) -> None:
    full, half = report["full"], report["half"]
    print(f"trace: {full['sessions']} sessions, {full['steps']} steps, "
          f"{report.get('layout', 'round-robin')} memories; "
          f"{len(full['runs'])} policies in {full['total_wall_s']} s wall, "
          f"{full['total_cpu_s']} s CPU (target <= 60 s wall on 2 cores)")  # fmt: skip
    print(f"{'policy':<10} {'wall s':>7} {'cpu s':>7} {'prep s':>7} {'plan s':>7} {'plans':>7} "
          f"{'active':>6} {'held':>5}")  # fmt: skip
    halves = {r["policy"]: r for r in half["runs"]}
    for r in full["runs"]:
        print(f"{r['policy']:<10} {r['wall_s']:>7} {r['cpu_s']:>7} {r['prepare_s']:>7} "
              f"{r['plan_s']:>7} {r['plans']:>7} {r['peak_active_sessions']:>6} "
              f"{r.get('peak_held_sessions', '-'):>5}")  # fmt: skip
    print(
        f"peak RSS MiB, half ({half['sessions']} sessions) -> full ({full['sessions']}); "
        "flat in trace length when the growth is ~0:"
    )
    for r in full["runs"]:
        h, f = halves[r["policy"]]["peak_rss_mib"], r["peak_rss_mib"]
        print(f"  {r['policy']:<10} {h:>6.1f} -> {f:>6.1f}  ({f - h:+.1f})")
    base = report.get("baseline")
    if base:
        cpu = sum(b.get("cpu_s", 0.0) for b in base["runs"])
        print(f"baseline {base['rev']} (same trace, same workers): {base['total_wall_s']} s wall,"
              f" {cpu:.1f} s CPU ({base['total_wall_s'] / full['total_wall_s']:.2f}x / "
              f"{cpu / max(full['total_cpu_s'], 1e-9):.2f}x ours)")  # fmt: skip
    for b in base["runs"] if base else []:
        ours = next(r for r in full["runs"] if r["policy"] == b["policy"])
        if "wall_s" in b:
            same = "identical" if not b["differs"] else "DIFFER in " + ", ".join(b["differs"])
            print(
                f"baseline {b['policy']:<10} {b['wall_s']:>7.1f} s wall {b['cpu_s']:>7.1f} s CPU "
                f"({b['cpu_s'] / ours['cpu_s']:.2f}x ours), RSS {b['peak_rss_mib']:.1f} MiB "
                f"(ours {ours['peak_rss_mib']:.1f}); "
                f"results: {same}"
            )
        else:
            print(f"baseline {b['policy']}: {b.get('timeout_s', b.get('error'))}")


if __name__ == "__main__":
    raise SystemExit(main())
