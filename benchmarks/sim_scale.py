"""The simulator at scale: a 3,000-session, ~57,000-step trace, five policies (issue 10 target:
<= 60 s on 2 cores, memory flat in trace length).

Usage::

    uv run python benchmarks/sim_scale.py [--sessions 3000] [--regime short] [--workers 2]
        [--baseline-rev REV] [--out benchmarks/results/sim_scale.json]

The trace is synthetic (``rewind traces synth`` knobs), shaped like the real trace the issue
replayed: mostly forward, ~19 steps per session, Poisson arrivals at a rate that keeps about 20
sessions active at once. Each policy runs in its own process (``--workers`` at a time, like
``rewind simulate``); per run the benchmark records wall and CPU seconds (the machine is
shared: wall seconds depend on its load), the seconds spent preparing the core's input
(proposals included) and in ``plan()``, the number of plans, the process's peak RSS (MiB) and
the entries the policy keeps per session / memory at the end. It runs the same policies on half
the trace too: "flat" means the peak RSS of the full trace is close to that of the half (the
state is bounded by the active sessions, not by the sessions seen so far).

``--baseline-rev REV`` also replays the same trace with the simulator of git revision ``REV``
(checked out into a temporary worktree), for the side-by-side ratio; bounded by
``--baseline-timeout`` seconds per policy (a baseline that times out is reported as such).
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
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.sim.regime import load_regime  # noqa: E402
from orchestrator.sim.run import build_policy  # noqa: E402
from orchestrator.sim.synth import SynthKnobs, synthesize, write_synthetic  # noqa: E402
from orchestrator.sim.trace import Trace, read_trace  # noqa: E402

POLICIES = ("none", "uniform", "markov", "lookahead", "oracle")
RESULTS = _HERE / "results"
ROOT = _HERE.parent

_BASELINE_SCRIPT = """
import json, resource, sys, time
from orchestrator.sim.engine import Simulation
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.trace import read_trace
trace = read_trace(sys.argv[1]); regime = load_regime(sys.argv[2])
t0 = time.perf_counter()
result = Simulation(trace, regime, build_policy(sys.argv[3], regime, trace), 0).run()
print(json.dumps({"wall_s": time.perf_counter() - t0, "requests": len(result.requests),
                  "jobs": len(result.jobs),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def knobs(sessions: int) -> SynthKnobs:
    """~19 steps a session, think ~1.5 s, arrivals keeping ~20 sessions active (short regime:
    a session lasts ~19 x (2.5 s chunk + 1.5 s think + waits) ~ 100-150 s)."""
    return SynthKnobs(sessions=sessions, sessions_per_memory=3.0, arrival_rate_per_s=0.07,
                      steps_min=12, steps_max=26, persistence=0.6, turn_bias=0.25,
                      think_mean_s=1.5, think_cv=0.5, seed=7)  # fmt: skip


def run_policy(trace_path: str, regime_name: str, policy: str) -> dict[str, Any]:
    """One policy over the trace in a fresh process; timings and peak RSS."""
    from orchestrator.sim.engine import Simulation

    trace, regime = read_trace(trace_path), load_regime(regime_name)
    t0, c0 = time.perf_counter(), time.process_time()
    sim = Simulation(trace, regime, build_policy(policy, regime, trace), 0)
    result = sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    active = _peak_active(trace, result)
    return {
        "policy": policy, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "policy_state": _policy_state(sim.policy),
        "prepare_s": round(result.propose_wall_s, 2), "plan_s": round(result.plan_wall_s, 2),
        "plans": result.plans, "requests": len(result.requests), "jobs": len(result.jobs),
        "peak_active_sessions": active, "proposals_asked": sim.live.proposals.asked,
        "proposals_reused": sim.live.proposals.reused,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_state": sim.live.size(),
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


def _peak_active(trace: Trace, result: Any) -> int:
    spans: dict[str, list[float]] = {}
    for r in result.requests:
        span = spans.setdefault(r.session_id, [r.requested_at, r.requested_at])
        span[1] = max(span[1], r.served_at or r.requested_at)
    events = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    peak = live = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    return peak


def run_all(
    trace_path: Path, regime: str, workers: int, policies: tuple[str, ...] = POLICIES
) -> tuple[float, list[dict[str, Any]]]:
    """Every policy, ``workers`` processes at a time (a fresh process per policy)."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, max_tasks_per_child=1) as pool:
        runs = list(pool.map(run_policy, [str(trace_path)] * len(policies),
                             [regime] * len(policies), policies))  # fmt: skip
    return time.perf_counter() - t0, runs


def baseline(rev: str, trace_path: Path, regime: str, timeout_s: float) -> dict[str, Any]:
    """The simulator of git revision ``rev`` on the same trace, one policy at a time."""
    out: dict[str, Any] = {"rev": rev, "runs": []}
    with tempfile.TemporaryDirectory(prefix="rewind-baseline-") as tmp:
        wt = Path(tmp) / "wt"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt), rev],
                       check=True)  # fmt: skip
        try:
            env = {**os.environ, "PYTHONPATH": str(wt)}
            for policy in ("none", "oracle"):
                try:
                    proc = subprocess.run(
                        [sys.executable, "-c", _BASELINE_SCRIPT, str(trace_path), regime, policy],
                        env=env, capture_output=True, text=True, timeout=timeout_s, cwd=wt,
                    )  # fmt: skip
                    run = json.loads(proc.stdout.strip().splitlines()[-1])
                except subprocess.TimeoutExpired:
                    run = {"timeout_s": timeout_s}
                out["runs"].append({"policy": policy, **run})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           check=False)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--regime", default="short")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--baseline-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_scale.json")
    parser.add_argument("--policies", default=",".join(POLICIES),
                        help="comma-separated subset (default: all five)")  # fmt: skip
    args = parser.parse_args(argv)
    policies = tuple(args.policies.split(","))
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "load_avg": os.getloadavg()}
    report: dict[str, Any] = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        traces = {}
        for label, n in (("half", args.sessions // 2), ("full", args.sessions)):
            path = Path(tmp) / f"{label}.jsonl"
            write_synthetic(path, knobs(n))
            steps = sum(len(s.steps) for s in synthesize(knobs(n)))
            traces[label] = path
            total, runs = run_all(path, args.regime, args.workers, policies)
            report[label] = {"sessions": n, "steps": steps, "total_wall_s": round(total, 1),
                             "total_cpu_s": round(sum(r["cpu_s"] for r in runs), 1),
                             "runs": runs}  # fmt: skip
        if args.baseline_rev:
            report["baseline"] = baseline(args.baseline_rev, traces["full"], args.regime,
                                          args.baseline_timeout)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _summary(report)
    return 0


def _summary(report: dict[str, Any]) -> None:
    full, half = report["full"], report["half"]
    print(f"trace: {full['sessions']} sessions, {full['steps']} steps; "
          f"{len(full['runs'])} policies in {full['total_wall_s']} s wall, "
          f"{full['total_cpu_s']} s CPU (target <= 60 s wall on 2 cores)")  # fmt: skip
    print(f"{'policy':<10} {'wall s':>7} {'cpu s':>7} {'prep s':>7} {'plan s':>7} {'plans':>7} "
          f"{'active':>6} {'RSS MiB':>8} {'half RSS':>8}")  # fmt: skip
    halves = {r["policy"]: r for r in half["runs"]}
    for r in full["runs"]:
        print(f"{r['policy']:<10} {r['wall_s']:>7} {r['cpu_s']:>7} {r['prepare_s']:>7} "
              f"{r['plan_s']:>7} "
              f"{r['plans']:>7} {r['peak_active_sessions']:>6} {r['peak_rss_mib']:>8} "
              f"{halves[r['policy']]['peak_rss_mib']:>8}")  # fmt: skip
    for b in report.get("baseline", {}).get("runs", []):
        ours = next(r for r in full["runs"] if r["policy"] == b["policy"])
        if "wall_s" in b:
            print(
                f"baseline {report['baseline']['rev']} {b['policy']}: {b['wall_s']:.1f} s "
                f"({b['wall_s'] / ours['wall_s']:.1f}x ours), RSS {b['peak_rss_mib']:.0f} MiB"
            )
        else:
            print(f"baseline {report['baseline']['rev']} {b['policy']}: > {b['timeout_s']} s")


if __name__ == "__main__":
    raise SystemExit(main())
