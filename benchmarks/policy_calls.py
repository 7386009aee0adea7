"""One policy's own calls, replayed without the simulator around them: CPU seconds per call kind
and a fingerprint of every answer (so a faster policy can be shown to answer bit for bit alike).

Usage::

    uv run python benchmarks/policy_calls.py [--policies markov,lookahead] [--sessions 1000]
        [--regime short] [--repeat 2] [--baseline-rev REV] [--calls-dir DIR]
        [--out benchmarks/results/policy_calls.json]

Step 1 (record): the simulator replays the ``sim_scale`` trace (``sim_scale.knobs``) once per
policy with the policy wrapped in a recorder, which keeps every ``propose`` context, ``observe``
event and ``forget_*`` call in order (pickled to ``--calls-dir``; reused if already there, so a
baseline and ours replay exactly the same calls). Step 2 (replay): a fresh policy, built as the
simulator builds it (``orchestrator.sim.run.build_policy``), is fed those calls in a fresh
process; the benchmark records its CPU seconds for the ``propose`` calls and for the rest, and
the SHA-256 of every proposal list (session, path, ``float.hex`` of P) in order. The policy's
answers do not feed back into the recorded calls (the recording is of one simulator run), so a
policy that answered differently would show it only in the fingerprint.

``--baseline-rev REV`` replays the same calls with the policies of git revision ``REV`` too
(checked out into a temporary worktree), alternating baseline and ours ``--repeat`` times
(the machine is shared: compare the runs side by side); "answers: identical" when every
fingerprint matches.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
ROOT = _HERE.parent
RESULTS = _HERE / "results"

# Run in a fresh interpreter whose sys.path starts at the revision replayed (ours or a
# baseline's): argv = calls file, regime, policy. Prints one JSON line.
_REPLAY_SCRIPT = """
import hashlib, json, pickle, sys, time
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.trace import read_trace
calls_path, regime_name, name = sys.argv[1:4]
with open(calls_path, "rb") as f:
    trace_path, ops = pickle.load(f)
regime = load_regime(regime_name)
policy = build_policy(name, regime, read_trace(trace_path))
digest = hashlib.sha256()
propose_s = other_s = 0.0
clock = time.process_time
for kind, arg in ops:
    t0 = clock()
    if kind == "propose":
        out = policy.propose(arg)
        propose_s += clock() - t0
        digest.update(repr([(p.session_id, p.path, p.probability.hex()) for p in out]).encode())
        continue
    if kind == "observe":
        policy.observe(arg)
    else:
        hook = getattr(policy, kind, None)
        if hook is not None:
            hook(arg)
    other_s += clock() - t0
print(json.dumps({"propose_cpu_s": propose_s, "other_cpu_s": other_s,
                  "cpu_s": propose_s + other_s, "fingerprint": digest.hexdigest()}))
"""


def _record_calls(policy: Any, ops: list[tuple[str, Any]]) -> None:
    """Make ``policy`` keep every call in ``ops`` (its answers unchanged). Its methods are
    replaced on the instance, not wrapped in another object: the live state asks a built-in
    policy less often than an unknown one (``policies.registry.time_free`` and
    ``children_free`` go by its type), and the calls recorded must be the ones it gets."""
    propose, observe = policy.propose, policy.observe

    def recording_propose(ctx: Any) -> Any:
        ops.append(("propose", ctx))
        return propose(ctx)

    def recording_observe(event: Any) -> None:
        ops.append(("observe", event))
        observe(event)

    policy.propose, policy.observe = recording_propose, recording_observe
    for hook in ("forget_session", "forget_memory"):
        method = getattr(policy, hook, None)
        if method is not None:
            setattr(policy, hook, _recording(hook, method, ops))


def _recording(kind: str, method: Any, ops: list[tuple[str, Any]]) -> Any:
    def call(arg: str) -> None:
        ops.append((kind, arg))
        method(arg)

    return call


def _sim_scale() -> Any:
    """benchmarks/sim_scale.py as a module (its trace knobs), without putting benchmarks/ on
    sys.path (benchmarks/policies.py would shadow the policies package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sim_scale", _HERE / "sim_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(name: str, sessions: int, regime_name: str, calls_dir: Path) -> Path:
    """The calls one simulator run makes to policy ``name`` (pickled; reused when present)."""
    from orchestrator.sim.engine import Simulation
    from orchestrator.sim.regime import load_regime
    from orchestrator.sim.run import build_policy
    from orchestrator.sim.synth import write_synthetic
    from orchestrator.sim.trace import read_trace

    knobs = _sim_scale().knobs

    calls_dir.mkdir(parents=True, exist_ok=True)
    out = calls_dir / f"{name}-{sessions}-{regime_name}-v2.pickle"
    if out.exists():
        return out
    trace_path = calls_dir / f"trace-{sessions}.jsonl"
    if not trace_path.exists():
        write_synthetic(trace_path, knobs(sessions))
    trace, regime = read_trace(trace_path), load_regime(regime_name)
    ops: list[tuple[str, Any]] = []
    policy = build_policy(name, regime, trace)
    _record_calls(policy, ops)
    Simulation(trace, regime, policy, 0, records=False).run()
    with open(out, "wb") as f:
        pickle.dump((str(trace_path), ops), f, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def replay(tree: Path, calls: Path, regime: str, name: str) -> dict[str, Any]:
    """Policy ``name`` of source tree ``tree`` fed the recorded calls, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run(
        [sys.executable, "-c", _REPLAY_SCRIPT, str(calls), regime, name],
        env=env, capture_output=True, text=True, cwd=tree, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-3:]}
    run: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default="markov,lookahead")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--regime", default="short")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--calls-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "rewind-calls")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "policy_calls.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"sessions": args.sessions, "regime": args.regime,
                              "load_avg": os.getloadavg(), "policies": {}}  # fmt: skip
    wt: Path | None = None
    with tempfile.TemporaryDirectory(prefix="rewind-baseline-") as tmp:
        if args.baseline_rev:
            wt = Path(tmp) / "wt"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt),
                            args.baseline_rev], check=True)  # fmt: skip
        try:
            for name in args.policies.split(","):
                t0 = time.perf_counter()
                calls = record(name, args.sessions, args.regime, args.calls_dir)
                with open(calls, "rb") as f:
                    _, ops = pickle.load(f)
                entry: dict[str, Any] = {
                    "calls": {k: sum(1 for op in ops if op[0] == k)
                              for k in ("propose", "observe", "forget_session", "forget_memory")},
                    "record_wall_s": round(time.perf_counter() - t0, 1),
                    "ours": [], "baseline": [],
                }  # fmt: skip
                del ops
                for _ in range(args.repeat):
                    if wt is not None:
                        entry["baseline"].append(replay(wt, calls, args.regime, name))
                    entry["ours"].append(replay(ROOT, calls, args.regime, name))
                prints = {r.get("fingerprint") for r in entry["ours"] + entry["baseline"]}
                entry["answers_identical"] = len(prints) == 1 and None not in prints
                report["policies"][name] = entry
                _print(name, entry, wt is not None)
        finally:
            if wt is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                               check=False)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


def _print(name: str, entry: dict[str, Any], with_baseline: bool) -> None:
    def cpu(runs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{r.get('cpu_s')} ({r.get('propose_cpu_s')} propose)" for r in runs)

    calls = entry["calls"]
    print(f"{name}: {calls['propose']} propose, {calls['observe']} observe calls; "
          f"CPU s ours {cpu(entry['ours'])}")  # fmt: skip
    if with_baseline:
        same = "identical" if entry["answers_identical"] else "DIFFER"
        print(f"{name}: CPU s baseline {cpu(entry['baseline'])}; answers: {same}")
    for r in entry["ours"] + entry["baseline"]:
        if "error" in r:
            print(f"{name}: error {r['error']}")


if __name__ == "__main__":
    raise SystemExit(main())
