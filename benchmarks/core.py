"""Time and memory of the decision core's ``plan()`` at 100, 1,000 and 10,000 active sessions.

Usage::

    uv run python benchmarks/core.py [--repeat 9] [--out benchmarks/results/core.json]

Each size builds one ``PlanInput`` shaped like a busy service (counts per active session):

- one memory per 4 sessions, every session's cursor a ready chunk 6 levels below its memory's
  root, with 3 ready siblings per level (a walked tree), so ~30 nodes per session's memory share;
- proposals as the built-in policies make them: ``--proposals`` per session (default 10: markov's
  4 depth-1 paths plus lookahead-style depth-2 paths), probabilities 0.5, 0.2, ... ;
- a pool of ``sessions // 2`` slots, full: half demand jobs, half speculative jobs, so demands
  must preempt; 1% of sessions waiting on a miss;
- budget: max_depth 2, a bucket that never binds (the admission loop runs to the slot cap).

It reports, per size, the median and p90 wall time of ``plan()`` over ``--repeat`` calls after one
warm-up, and the tracemalloc peak (KiB) of one more call, against the issue's target of 20 ms at
10,000 active sessions. For reference it also times one ``propose()`` per built-in policy
(``markov`` trained on 2,000 observed actions; ``lookahead`` over it), in microseconds per session:
the live shell and the simulator call it for every active session before each plan.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path and its policies.py would shadow the
# ``policies`` package. Drop it (the project itself is installed).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.core.plan import plan  # noqa: E402
from orchestrator.core.poses import ACTION_NAMES, action_to_pose  # noqa: E402
from orchestrator.core.types import (  # noqa: E402
    ActionObserved,
    BucketState,
    Budget,
    DemandRequest,
    JobKind,
    PlanInput,
    PolicyContext,
    Proposal,
    RunningJob,
    SessionView,
    Timing,
    TreeNode,
)
from policies import make_policy  # noqa: E402

SIZES = (100, 1_000, 10_000)
TARGET_MS = 20.0
DEPTH = 6
SIBLINGS = ("w", "left", "right", "d")
PATHS_1 = ("w", "left", "right", "a")
PATHS_2 = (("w", "w"), ("w", "left"), ("left", "left"), ("right", "right"), ("w", "right"),
           ("left", "w"))  # fmt: skip
RESULTS = Path(__file__).resolve().parent / "results"
POSE = {a: str(action_to_pose(a)) for a in ACTION_NAMES}


def _tree(memory: str, sessions: list[str]) -> tuple[list[TreeNode], dict[str, str]]:
    """A walked tree: a spine of DEPTH ready chunks, 3 ready siblings per level; cursors at the
    end of the spine (one per session, on sibling branches so that they differ)."""
    nodes = [TreeNode(f"{memory}/r", memory, None, POSE["w"], "w", "ready", 0, 0.0)]
    spine = nodes[0].chunk_id
    cursors: dict[str, str] = {}
    for depth in range(1, DEPTH + 1):
        level = []
        for action in SIBLINGS:
            cid = f"{spine}/{action}"
            level.append(TreeNode(cid, memory, spine, POSE[action], action, "ready", depth, 1.0))
        nodes += level
        spine = level[0].chunk_id
    for i, sid in enumerate(sessions):
        cursors[sid] = nodes[-1 - (i % len(SIBLINGS))].chunk_id
    return nodes, cursors


def build_input(sessions: int, per_session: int) -> PlanInput:
    """The ``PlanInput`` described in the module doc for ``sessions`` active sessions."""
    now = 1000.0
    nodes: list[TreeNode] = []
    views: list[SessionView] = []
    proposals: list[Proposal] = []
    paths = [(p,) for p in PATHS_1] + list(PATHS_2)
    for m in range(0, sessions, 4):
        memory = f"m{m}"
        sids = [f"s{i}" for i in range(m, min(m + 4, sessions))]
        tree, cursors = _tree(memory, sids)
        nodes += tree
        for sid in sids:
            views.append(SessionView(sid, memory, cursors[sid], now - 3.0, now - 3.0,
                                     ("w", "w", "left", "w"), "markov"))  # fmt: skip
            for k, path in enumerate(paths[:per_session]):
                proposals.append(Proposal(sid, path, 0.5 / (k + 1)))
    slots = max(2, sessions // 2)
    jobs: list[RunningJob] = []
    for j in range(slots):
        view = views[j % len(views)]
        kind: JobKind = "demand" if j % 2 == 0 else "speculative"
        cid = f"{view.cursor_chunk_id}/job{j}"
        pose = POSE[ACTION_NAMES[8 + j % 16]]
        nodes.append(TreeNode(cid, view.memory_id, view.cursor_chunk_id, pose, None, "running",
                              DEPTH + 1))  # fmt: skip
        jobs.append(RunningJob(f"j{j}", cid, view.memory_id, view.cursor_chunk_id, pose, kind,
                               now - j % 100, 150.0, 0.3, view.session_id, 1))  # fmt: skip
    demands = [
        DemandRequest(f"d{i}", v.memory_id, v.cursor_chunk_id, POSE["s"], "s", v.session_id, now)
        for i, v in enumerate(views[:: max(1, 100)])
    ]
    budget = Budget(max_containers=slots, speculative_share=0.75, rate_gpu_s_per_s=1e6,
                    burst_gpu_s=1e9, max_depth=2, per_session_inflight=4,
                    min_probability=0.05, idle_timeout_s=120.0)  # fmt: skip
    timing = Timing(150.0, 0.0, 125 / 24, 8.0)
    return PlanInput(now=now, nodes=tuple(nodes), sessions=tuple(views), jobs=tuple(jobs),
                     demands=tuple(demands), proposals=tuple(proposals), budget=budget,
                     bucket=BucketState(1e9, now), timing=timing)  # fmt: skip


def time_plan(inp: PlanInput, repeat: int) -> dict[str, Any]:
    """Median/p90 wall time of ``plan(inp)`` (ms) and one call's tracemalloc peak (KiB)."""
    result = plan(inp)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan(inp)
        times.append((time.perf_counter() - t0) * 1000.0)
    tracemalloc.start()
    plan(inp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times.sort()
    return {
        "sessions": len(inp.sessions),
        "nodes": len(inp.nodes),
        "jobs": len(inp.jobs),
        "demands": len(inp.demands),
        "proposals": len(inp.proposals),
        "starts": len(result.starts),
        "cancels": len(result.cancels),
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "peak_kib": round(peak / 1024, 1),
        "target_ms": TARGET_MS if len(inp.sessions) == 10_000 else None,
    }


def time_policies(repeat: int) -> dict[str, float]:
    """Median microseconds of one ``propose()`` per built-in learned/baseline policy."""
    out: dict[str, float] = {}
    markov = make_policy("markov")
    history: tuple[str, ...] = ()
    for i in range(2000):
        action = ("w", "w", "left", "w", "right", "a+left")[i % 6]
        markov.observe(ActionObserved(f"s{i % 50}", f"m{i % 10}", history[-3:], action))
        history = (*history[-3:], action)
    view = SessionView("s1", "m1", "c", 0.0, 0.0, ("w", "w", "left"), "markov")
    ctx = PolicyContext(view, (), {}, ACTION_NAMES, 2, 0.0, 0)
    lookahead = make_policy("lookahead")
    lookahead.base = markov  # type: ignore[attr-defined]  # (Policy has no .base)
    for name, policy in (("uniform", make_policy("uniform")), ("markov", markov),
                         ("lookahead", lookahead)):  # fmt: skip
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            policy.propose(ctx)
            times.append((time.perf_counter() - t0) * 1e6)
        out[name] = round(statistics.median(times), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="timed calls per size")
    parser.add_argument("--proposals", type=int, default=10, help="proposals per session")
    parser.add_argument("--out", type=Path, default=RESULTS / "core.json")
    args = parser.parse_args(argv)
    rows = [time_plan(build_input(n, args.proposals), args.repeat) for n in SIZES]
    policies = time_policies(max(args.repeat, 50))
    report = {"python": sys.version.split()[0], "platform": platform.platform(),
              "repeat": args.repeat, "proposals_per_session": args.proposals, "plan": rows,
              "propose_us_per_session": policies,
              "target_met": rows[-1]["median_ms"] <= TARGET_MS}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'sessions':>9} {'nodes':>7} {'proposals':>9} {'median ms':>10} {'p90 ms':>8} "
          f"{'peak KiB':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['sessions']:>9} {r['nodes']:>7} {r['proposals']:>9} {r['median_ms']:>10} "
              f"{r['p90_ms']:>8} {r['peak_kib']:>9}")  # fmt: skip
    print(f"target: plan() <= {TARGET_MS} ms at 10,000 sessions: "
          f"{'met' if report['target_met'] else 'NOT met'}")  # fmt: skip
    print("propose() per session, median us:", policies)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
