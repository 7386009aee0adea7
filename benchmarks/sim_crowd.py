"""10,000 concurrent viewers on a 200-container pool, in the simulator (issue 16).

What one elected scheduler must plan for when API replicas have spread the viewers over many
processes: every live session reaches its live state, so this is the load on ``plan()``. The
trace is synthetic (``rewind traces synth`` knobs): ``--sessions`` viewers arriving within the
first ``--arrive-s`` seconds, ``--viewers-per-memory`` to a memory, mostly forward
(persistence 0.6), think ~1.5 s. The regime is ``short`` (few-step chunks) with a 200-container
warm pool and a budget scaled to it.

The simulator plans after every batch of simultaneous events. The service coalesces wake-ups
over 50 ms and plans at least every second; to measure "plan time per tick" the same way here,
every time in the run sits on a ``--tick-s`` grid: arrivals and think times are rounded to it,
generation time is fixed (``--gpu-s``, a multiple of the tick) and the chunk lasts exactly
2.5 s (61 frames at 24.4 fps), so each tick's events form one batch and one plan.

Per policy (each in its own process): wall seconds, plans (= ticks with work), plan and
prepare seconds per plan (mean, and from the wall budget), waits (p50 / p95 / mean), hit rate,
GPU-seconds (total / speculative / wasted), peak running jobs, peak RSS.

Usage: ``uv run python benchmarks/sim_crowd.py [--sessions 10000] [--containers 200]``
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.sim.metrics import summarize  # noqa: E402
from orchestrator.sim.regime import Generation, Regime, load_regime  # noqa: E402
from orchestrator.sim.run import build_policy  # noqa: E402
from orchestrator.sim.synth import SynthKnobs, synthesize  # noqa: E402
from orchestrator.sim.trace import read_trace  # noqa: E402

RESULTS = _HERE / "results"


def regime_for(containers: int, gpu_s: float, tick_s: float) -> Regime:
    """``short`` with a ``containers``-slot warm pool, fixed G and a budget scaled to it."""
    base = load_regime("short")
    scale = containers / base.pool.max_containers
    return replace(
        base,
        fps=24.4,  # 61 frames = exactly 2.5 s: every event on the tick grid
        generation=Generation(
            distribution="fixed", mean_gpu_s=gpu_s, min_gpu_s=gpu_s, max_gpu_s=gpu_s
        ),
        # All warm, no boots: a cold start (180-300 s, random) would move events off the grid.
        pool=replace(
            base.pool,
            max_containers=containers,
            warm_containers=containers,
            initial_warm=containers,
            cold_start_min_s=0.0,
            cold_start_max_s=0.0,
        ),
        budget=replace(
            base.budget,
            max_containers=containers,
            rate_gpu_s_per_s=base.budget.rate_gpu_s_per_s * scale,
            burst_gpu_s=base.budget.burst_gpu_s * scale,
        ),
        timing=replace(base.timing, gpu_s_per_chunk=gpu_s),
        tick_s=tick_s,
    )


def write_trace(path: Path, args: argparse.Namespace) -> None:
    """A synthetic trace with arrivals and think times on the tick grid."""
    knobs = SynthKnobs(
        sessions=args.sessions, sessions_per_memory=args.viewers_per_memory,
        arrival_rate_per_s=0.0, steps_min=args.steps_min, steps_max=args.steps_max,
        persistence=0.6, turn_bias=0.25, think_mean_s=1.5, think_cv=0.5, seed=16,
    )  # fmt: skip
    trace = synthesize(knobs)
    rng = random.Random(16)
    tick = args.tick_s

    def snap(x: float) -> float:
        return max(tick, round(x / tick) * tick)

    with path.open("w") as f:
        for s in trace:
            start = round(rng.uniform(0.0, args.arrive_s) / tick) * tick
            steps = [{"action": st.action, "think_s": snap(st.think_s)} for st in s.steps]
            f.write(json.dumps({"session_id": s.session_id, "memory": s.memory,
                                "start_s": start, "steps": steps}) + "\n")  # fmt: skip


def run_policy(trace_path: str, policy: str, containers: int, gpu_s: float,
               tick_s: float) -> dict[str, Any]:  # fmt: skip
    """One policy over the trace in a fresh process."""
    from orchestrator.sim.engine import Simulation

    trace = read_trace(trace_path)
    regime = regime_for(containers, gpu_s, tick_s)
    t0 = time.perf_counter()
    sim = Simulation(trace, regime, build_policy(policy, regime, trace), 0)
    result = sim.run()
    wall = time.perf_counter() - t0
    m = summarize(result, regime)
    plans = max(1, result.plans)
    return {
        "policy": policy, "wall_s": round(wall, 1), "virtual_s": round(result.end_s, 1),
        "plans": result.plans, "plan_ms_per_tick": round(result.plan_wall_s / plans * 1000, 2),
        "prepare_ms_per_tick": round(result.propose_wall_s / plans * 1000, 2),
        "wall_ms_per_tick": round(wall / plans * 1000, 2),
        "peak_running": sim.peak_running, "requests": m["requests"],
        "hit_rate": m["hit_rate"], "inflight_rate": m["inflight_rate"],
        "wait_p50_s": m["wait_p50_s"], "wait_p95_s": m["wait_p95_s"],
        "wait_mean_s": m["wait_mean_s"], "gpu_s_total": m["gpu_s_total"],
        "gpu_s_speculative": m["gpu_s_speculative"], "gpu_s_wasted": m["gpu_s_wasted"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--viewers-per-memory", type=float, default=100.0)
    parser.add_argument("--steps-min", type=int, default=3)
    parser.add_argument("--steps-max", type=int, default=6)
    parser.add_argument("--arrive-s", type=float, default=30.0)
    parser.add_argument("--gpu-s", type=float, default=9.0)
    parser.add_argument("--tick-s", type=float, default=0.5)
    parser.add_argument("--policies", default="none,markov")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_crowd.json")
    args = parser.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="rewind-crowd-") as tmp:
        trace_path = Path(tmp) / "crowd.jsonl"
        write_trace(trace_path, args)
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers, max_tasks_per_child=1) as pool:
            n = len(policies)
            runs = list(pool.map(run_policy, [str(trace_path)] * n, policies,
                                 [args.containers] * n, [args.gpu_s] * n,
                                 [args.tick_s] * n))  # fmt: skip
        total = time.perf_counter() - t0
    out = {
        "benchmark": "sim_crowd", "machine": platform.machine(),
        "python": platform.python_version(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "total_wall_s": round(total, 1), "runs": runs,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{args.sessions} viewers, {args.containers} containers, G = {args.gpu_s:g} s, "
          f"tick {args.tick_s:g} s; {total:.0f} s wall")  # fmt: skip
    head = ("policy", "plans", "plan ms/tick", "prep ms/tick", "wait p50", "p95", "hit",
            "GPU-s", "spec GPU-s", "wasted", "peak run")  # fmt: skip
    print("  ".join(f"{h:>11}" for h in head))
    for r in runs:
        row = (r["policy"], r["plans"], r["plan_ms_per_tick"], r["prepare_ms_per_tick"],
               r["wait_p50_s"], r["wait_p95_s"], r["hit_rate"], r["gpu_s_total"],
               r["gpu_s_speculative"], r["gpu_s_wasted"], r["peak_running"])  # fmt: skip
        print("  ".join(f"{v:>11}" for v in row))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
