"""Where a simulator run's CPU goes, and how much of it a different plan cadence could remove.

Usage::

    uv run python benchmarks/sim_cadence.py [--sessions 3000] [--regime short] [--workers 2]
        [--policies none,uniform,markov,lookahead,oracle]
        [--out benchmarks/results/sim_cadence.json]

The trace is ``sim_scale.py``'s (the issue-10 target: 3,000 sessions, ~57,000 steps, ~20
sessions active at once, five policies in <= 60 s on 2 cores). Each policy runs once in its own
process, ``--workers`` at a time, and the run's CPU seconds are split into:

- ``propose_s``, ``observe_s``: the policy's own ``propose`` and ``observe`` (timed around
  each call);
- ``prepare_s``: the rest of ``LiveState.prepare`` (the live state's upkeep and core input);
- ``plan_s``: ``core.plan()``;
- ``other_s``: everything else (the engine's event heap, request resolution, job outcomes,
  the simulated pool and metrics).

It also counts the event batches (distinct event times, each of which asks for a plan), the plans
that ran (``LiveState.needs_plan`` skips a batch that changed nothing a plan reads), the plans
that started or cancelled a job, and, for coalescing windows of 10 / 50 / 100 / 250 ms, how many
plans would remain if plans were merged greedily within a window (the live service's
``PlanPacer`` merges wake-ups within 50 ms, ``orchestrator.scheduler._COALESCE_S``; the simulator
plans after every batch, as ``tests/integration/test_differential.py`` drives the shell). The
merged counts are read off this run's plan times, not from a replay with merging: a replay that
merged would also delay every plan, and so change what is decided.

The summary ends with what bounds the five-policy wall time on ``--workers`` cores: the sum of
the runs' CPU seconds divided by the workers, the longest single run, and the makespan of the
longest-first schedule ``sim_scale.py`` uses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE))

from sim_scale import POLICIES, start_order, write_layout  # noqa: E402

from orchestrator.sim.engine import Simulation  # noqa: E402
from orchestrator.sim.regime import load_regime  # noqa: E402
from orchestrator.sim.run import build_policy  # noqa: E402
from orchestrator.sim.trace_file import open_trace  # noqa: E402

RESULTS = _HERE / "results"
WINDOWS_S = (0.01, 0.05, 0.1, 0.25)


class _Timer:
    """Seconds spent inside the wrapped callables (perf_counter; one process, one thread)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        return timed


class _Cadence(Simulation):
    """The engine, recording each batch, the time of each plan that ran, and the plans that
    started or cancelled a job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches = 0
        self.plan_times: list[float] = []
        self.acting = 0
        self._acted = False

    def _plan(self) -> None:
        self.batches += 1
        plans, self._acted = self.plans, False
        super()._plan()
        if self.plans > plans:
            self.plan_times.append(self.now)
            self.acting += self._acted

    def _start(self, *args: Any) -> None:
        self._acted = True
        super()._start(*args)

    def _release(self, job: Any) -> None:
        if job.cancel_reason is not None:
            self._acted = True
        super()._release(job)


def merged(times: list[float], window_s: float) -> int:
    """Plans left when every plan within ``window_s`` of the one that opened a window joins it
    (greedy, in time order; ``times`` ascending, seconds)."""
    n, opened = 0, float("-inf")
    for t in times:
        if t >= opened + window_s:
            n, opened = n + 1, t
    return n


def run_policy(trace_path: str, regime_name: str, name: str) -> dict[str, Any]:
    """One policy over the trace: the CPU split, the plan cadence and the merged counts."""
    regime = load_regime(regime_name)
    policy = build_policy(name, regime)
    timers = {"propose": _Timer(), "observe": _Timer()}
    for method, timer in timers.items():
        setattr(policy, method, timer.wrap(getattr(policy, method)))
    c0 = time.process_time()
    sim = _Cadence(open_trace(trace_path), regime, policy, 0, records=False)
    result = sim.run()
    cpu = time.process_time() - c0
    propose, observe = timers["propose"], timers["observe"]
    # propose is called from prepare (inside propose_wall_s); observe from the request path
    return {
        "policy": name, "cpu_s": round(cpu, 2), "propose_s": round(propose.seconds, 2),
        "observe_s": round(observe.seconds, 2), "proposals": propose.calls,
        "observed": observe.calls, "plan_s": round(result.plan_wall_s, 2),
        "prepare_s": round(result.propose_wall_s - propose.seconds, 2),
        "batches": sim.batches, "plans": result.plans, "acting_plans": sim.acting,
        "merged": {str(w): merged(sim.plan_times, w) for w in WINDOWS_S},
    }  # fmt: skip


def makespan(cpu: dict[str, float], order: list[str], workers: int) -> float:
    """The wall seconds of running ``order``'s runs on ``workers`` cores, each run started on
    the first core to come free (``sim_scale.run_all``'s pool), from their CPU seconds."""
    free = [0.0] * workers
    for name in order:
        i = free.index(min(free))
        free[i] += cpu[name]
    return max(free)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--regime", default="short")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_cadence.json")
    args = parser.parse_args(argv)
    policies = tuple(args.policies.split(","))
    order = start_order(policies)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        write_layout(path, args.sessions)
        with ProcessPoolExecutor(max_workers=args.workers, max_tasks_per_child=1) as pool:
            runs = list(pool.map(run_policy, [str(path)] * len(order),
                                 [args.regime] * len(order), order))  # fmt: skip
    by_name = {r["policy"]: r for r in runs}
    cpu = {r["policy"]: r["cpu_s"] for r in runs}
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg": os.getloadavg()},
        "sessions": args.sessions, "workers": args.workers,
        "runs": [by_name[p] for p in policies],
        "bounds": {"cpu_over_workers_s": round(sum(cpu.values()) / args.workers, 1),
                   "longest_run_s": max(cpu.values()),
                   "longest_first_makespan_s": round(makespan(cpu, order, args.workers), 1)},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _summary(report)
    return 0


def _summary(report: dict[str, Any]) -> None:
    print(
        f"{report['sessions']} sessions; CPU seconds per run, split (policy = its propose and "
        "observe); plans left if merged within a window, as a share of the plans that ran:"
    )
    windows = " ".join(f"{w * 1000:>5.0f}ms" for w in WINDOWS_S)
    print(f"{'policy':<10} {'cpu':>6} {'policy':>7} {'prepare':>8} {'plan':>6} {'other':>6} "
          f"{'batches':>8} {'plans':>7} {'acting':>7} {windows}")  # fmt: skip
    for r in report["runs"]:
        policy = r["propose_s"] + r["observe_s"]
        other = r["cpu_s"] - r["prepare_s"] - r["plan_s"] - policy
        shares = " ".join(f"{r['merged'][str(w)] / max(r['plans'], 1):>7.0%}" for w in WINDOWS_S)
        print(f"{r['policy']:<10} {r['cpu_s']:>6.1f} {policy:>7.1f} {r['prepare_s']:>8.1f} "
              f"{r['plan_s']:>6.1f} {other:>6.1f} {r['batches']:>8} {r['plans']:>7} "
              f"{r['acting_plans']:>7} {shares}")  # fmt: skip
    b = report["bounds"]
    runs, workers = len(report["runs"]), report["workers"]
    print(f"{runs} runs on {workers} cores: >= {b['cpu_over_workers_s']} s (CPU / cores), "
          f">= {b['longest_run_s']} s (longest run), {b['longest_first_makespan_s']} s "
          f"longest-first (target <= 60 s)")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
