"""Where a replay's memory goes, half trace against full (issue 10: memory flat in trace length).

Usage::

    uv run python benchmarks/sim_memory.py [--sessions 3000] [--policies none] [--workers 2]
        [--out benchmarks/results/sim_memory.json]

Replays ``benchmarks/sim_scale.py``'s synthetic trace (and its first half) under ``tracemalloc``,
each run in a fresh process, streamed as sim_scale runs it (``open_trace``, no records). Every
500 plans it samples the traced memory; at each new high (5 % above the last) it takes a
snapshot, so the last one is the peak's make-up, printed as the top allocation sites (file and
line) with what the engine held then: memories whose stored chunks it keeps in RAM for a
later arrival (``Simulation.books.stored``, a ``ColdStore``), those chunks, the memories whose
chunks wait in its spill file on disk, the session traces it held (``held``).

Two layouts of the same sessions (``sim_scale.write_layout``): ``round-robin`` is the trace as
synthesized (session i on memory i mod M, so every memory is visited again across the whole
trace and the store of chunks kept for the next visit grows with the trace, as a database
would: the engine keeps it on disk once the live state evicted the memory), ``blocked`` puts
each memory's viewers one after another, so a memory's chunks are dropped once its last viewer
arrived: what is left there is the replay's own state.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.sim.engine import Simulation  # noqa: E402
from orchestrator.sim.regime import load_regime  # noqa: E402
from orchestrator.sim.run import build_policy  # noqa: E402
from orchestrator.sim.trace_file import open_trace  # noqa: E402

RESULTS = _HERE / "results"
LAYOUTS = ("round-robin", "blocked")  # sim_scale.write_layout


class Sampled(Simulation):
    """A replay that snapshots ``tracemalloc`` at each new high of the traced memory."""

    every = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.high, self.samples = 0, 0
        self.snapshot: tracemalloc.Snapshot | None = None
        self.at_high: dict[str, float] = {}

    def _plan(self) -> None:
        super()._plan()
        self.samples += 1
        if self.samples % self.every:
            return
        current = tracemalloc.get_traced_memory()[0]
        if current > self.high * 1.05:
            self.high, self.snapshot = current, tracemalloc.take_snapshot()
            self.at_high = {
                "t_s": round(self.now, 1),
                "stored_memories": self.books.stored.memories_in_ram,
                "stored_chunks": self.books.stored.chunks_in_ram,
                "spilled_memories": self.books.stored.memories_on_disk,
                "held_sessions": len(self.held),
                "open_sessions": self.sessions_open,
            }


def run(trace_path: str, regime_name: str, policy: str, top: int) -> dict[str, Any]:
    """One replay under tracemalloc: peak traced MiB, peak RSS MiB, the make-up at the high."""
    regime = load_regime(regime_name)
    tracemalloc.start(1)
    base = tracemalloc.take_snapshot()
    sim = Sampled(open_trace(trace_path), regime, build_policy(policy, regime), 0, records=False)
    sim.run()
    current, peak = tracemalloc.get_traced_memory()
    sites = []
    if sim.snapshot is not None:
        for stat in sim.snapshot.compare_to(base, "lineno")[:top]:
            frame = stat.traceback[0]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            sites.append({"site": where, "mib": round(stat.size_diff / 2**20, 2),
                          "count": stat.count_diff})  # fmt: skip
    return {
        "policy": policy,
        "traced_peak_mib": round(peak / 2**20, 1),
        "traced_end_mib": round(current / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_held_sessions": sim.peak_held,
        "at_high": sim.at_high,
        "top_sites": sites,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--regime", default="short")
    parser.add_argument("--policies", default="none")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--out", type=Path, default=RESULTS / "sim_memory.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(_HERE))  # for sim_scale.knobs, in this process only
    jobs: list[tuple[str, str, int, str]] = []
    report: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts.split(","):
            for label, n in (("half", args.sessions // 2), ("full", args.sessions)):
                path = Path(tmp) / f"{layout}-{label}.jsonl"
                from sim_scale import write_layout  # benchmarks/ is on the path here only

                write_layout(path, n, layout)
                for policy in args.policies.split(","):
                    jobs.append((layout, label, n, policy))
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=context, max_tasks_per_child=1) as pool:
            runs = list(pool.map(run, [str(Path(tmp) / f"{j[0]}-{j[1]}.jsonl") for j in jobs],
                                 [args.regime] * len(jobs), [j[3] for j in jobs],
                                 [args.top] * len(jobs)))  # fmt: skip
    for (layout, label, n, _), r in zip(jobs, runs, strict=True):
        report["runs"].append({"layout": layout, "trace": label, "sessions": n, **r})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _summary(report["runs"])
    return 0


def _summary(runs: list[dict[str, Any]]) -> None:
    print("RSS includes tracemalloc's own (its snapshots); compare the traced peaks")
    print(f"{'layout':<12} {'policy':<10} {'trace':<5} {'traced peak':>11} {'RSS':>6} "
          f"{'held':>5} {'stored in RAM memories/chunks, spilled, at the high':>52}")  # fmt: skip
    for r in runs:
        h = r["at_high"]
        stored = (f"{h.get('stored_memories', '-')}/{h.get('stored_chunks', '-')}, "
                  f"{h.get('spilled_memories', '-')}")  # fmt: skip
        print(f"{r['layout']:<12} {r['policy']:<10} {r['trace']:<5} "
              f"{r['traced_peak_mib']:>8.1f} MiB {r['peak_rss_mib']:>6.1f} "
              f"{r['peak_held_sessions']:>5} {stored:>52}")  # fmt: skip
    for r in runs:
        if r["trace"] == "full":
            sites = ", ".join(f"{s['site']} {s['mib']} MiB" for s in r["top_sites"])
            print(f"top sites at the high, {r['layout']} {r['policy']} full: {sites}")


if __name__ == "__main__":
    raise SystemExit(main())
