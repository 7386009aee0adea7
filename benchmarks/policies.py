"""Every policy side by side, per regime, against the honest oracle: waits, GPU bill, calibration.

Usage::

    uv run python benchmarks/policies.py [--workers 2] [--seed 0] [--seeds 3]
        [--default-policy NAME] [--regimes a100,short,crowd]
        [--out benchmarks/results/policies.json] [--plot benchmarks/results/policies.png]

For each shipped regime (``regimes/a100.toml``, ``short.toml``, ``crowd.toml``: realistic pools
with a few warm containers, scale-down and cold starts, the live default budget) it synthesises
the regime's trace (its ``[synth]`` table) and runs, all in one run on the same world:

- ``default``: none, uniform, markov, lookahead and the oracle policy at the regime's budget,
  ``bayes`` (``orchestrator.sim.bayes``: the generator's own next-action law, the predictive
  ceiling: what a policy that learned the viewers perfectly, but knows none of their draws,
  reaches), and the bounds of ``orchestrator.sim.bound``: ``clairvoyant`` (the honest oracle: a
  schedule knowing every viewer's future, on the regime's pool) and ``serial-chain`` (the lower
  bound: unlimited warm slots);
- ``sweep``: the speculative refill rate over the regime's ``[sweep]`` list (trade-off curves;
  "beats uniform at equal GPU-seconds" reads uniform's curve);
- ``random``: viewers choosing uniformly among the 24 actions, where speculation cannot help;
- ``human``: human-like viewers (``SynthKnobs(viewer="human")``: mostly forward, turns 12.5 %
  each side, think 0.5-2 s, at least 8 viewers per memory), the kind of trace the results are
  re-checked on;
- ``heldout``: uniform, markov and lookahead after learning from *other* viewers (the same
  generator with another seed, on other memories), scored for calibration on this trace's
  viewers (``orchestrator.sim.calibration``), on the regime trace and on the human trace;
- ``ideal``: the same trace on the pre-issue-11 setup (every container warm, nothing billed idle
  apart from the warm pool, a 400 GPU-s/s budget), to show what realism costs.

GPU-seconds are billed GPU-seconds (``gpu_s_billed``: job time with cold-start loads, plus idle
warm time). Shares of the oracle's mean-wait reduction are against the honest oracle
(``bound.honest_oracle``: the better of ``clairvoyant`` and the oracle policy).

Targets (issue 11), checked per policy and regime, and printed as verdicts:

1. >= 90 % of the honest oracle's mean-wait reduction at <= 1.5x its billed GPU-seconds, in
   every shipped regime (``default``; the ``human`` scenario is reported alongside);
2. beats uniform at equal GPU-seconds: mean wait below uniform's swept curve (piecewise linear
   in billed GPU-seconds, clamped at the ends) at the policy's own billed GPU-seconds;
3. on random viewers <= 1.05x none's billed GPU-seconds;
4. expected calibration error (over the proposed probabilities) <= 0.05 on held-out viewers
   (the top-label ECE is printed beside it: the proposed-probability ECE is diluted by the many
   small probabilities of a wide top_k, and a policy proposing k equal probabilities fills one
   bin whose average can match by accident).

Every run is repeated on ``--seeds`` seeds (default 3: traces and worlds 0, 1, 2) and the runs
are pooled as one larger experiment (``metrics.pool_runs``: counts and GPU-seconds summed, mean
waits over all requests, reliability tables summed); ``per_seed`` in the JSON keeps each seed's
mean wait, bill and share, since one 30-viewer trace moves a share by tens of points.

Writes the JSON (every metric, sweep, calibration table and verdict), a PNG (mean wait and hit
rate against billed GPU-hours per regime, one line per policy) and prints the tables. Not a
test: nothing is asserted. About 3 minutes on 2 cores with ``--workers 2``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

# This file is named like the ``policies`` package; run as a script, its folder comes first on
# sys.path and would shadow the package. Drop it (the project itself is installed).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from orchestrator.config import Settings  # noqa: E402
from orchestrator.sim.bound import ARRIVED, CLAIRVOYANT, SERIAL_CHAIN  # noqa: E402
from orchestrator.sim.metrics import add_comparisons, pool_runs  # noqa: E402
from orchestrator.sim.regime import Regime, load_regime  # noqa: E402
from orchestrator.sim.report import plot_tradeoff  # noqa: E402
from orchestrator.sim.run import SWEEP_KEYS, Job, run_many, sweep_regime  # noqa: E402
from orchestrator.sim.synth import synthesize  # noqa: E402
from orchestrator.sim.trace import Trace  # noqa: E402
from orchestrator.tables import new_table, table_text  # noqa: E402

REGIMES = ("a100", "short", "crowd")
CEILING = "bayes"  # the generator's own law: the best a causal policy can predict (sim.bayes)
POLICIES = ("none", "uniform", "markov", "lookahead", "oracle", CEILING)
BOUNDS = (CLAIRVOYANT, ARRIVED, SERIAL_CHAIN)
LEARNED = ("uniform", "markov", "lookahead")
SWEPT = ("uniform", "markov", "lookahead", "oracle")
RESULTS = Path(__file__).resolve().parent / "results"
TRAIN_SEED_OFFSET = 1000  # held-out viewers: the training trace's seed is seed + this
SHARE_TARGET, GPU_TARGET, RANDOM_TARGET, ECE_TARGET = 0.9, 1.5, 1.05, 0.05


def _include(policy: str) -> None:
    """Run a default policy that is not one of the built-in four like the learned ones."""
    global POLICIES, LEARNED, SWEPT
    if policy not in (*POLICIES, *BOUNDS):
        POLICIES, LEARNED, SWEPT = (*POLICIES, policy), (*LEARNED, policy), (*SWEPT, policy)


def _trace(regime: Regime, label: str, **knobs: Any) -> Trace:
    k = replace(regime.synth, **knobs)
    # The knobs in the meta, as ``rewind traces synth`` writes them: ``bayes`` reads them.
    meta = {"generator": "benchmarks/policies.py", "knobs": asdict(k)}
    return Trace(tuple(synthesize(k)), meta=meta, source=label)


def _human(regime: Regime, seed: int) -> Trace:
    per_memory = max(8.0, regime.synth.sessions_per_memory)
    return _trace(regime, f"human seed {seed}", viewer="human", persistence=0.3,
                  sessions_per_memory=per_memory, seed=seed)  # fmt: skip


def _ideal(regime: Regime) -> Regime:
    """The pre-issue-11 setup: every container warm from the start, a budget that never binds."""
    pool = replace(regime.pool, warm_containers=regime.pool.max_containers, initial_warm=None)
    budget = replace(regime.budget, rate_gpu_s_per_s=400.0, burst_gpu_s=8000.0)
    return replace(regime, pool=pool, budget=budget)


def _interp(points: list[tuple[float, float]], x: float) -> float:
    """y at x on the piecewise-linear curve through ``points`` (sorted by x), clamped."""
    points = sorted(points)
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else min(y0, y1)
    return points[-1][1]


def _jobs(regimes: dict[str, Regime], seeds: range) -> tuple[list[Job], list[tuple[str, ...]]]:
    """Every run of the benchmark; each key is (regime, scenario, policy[, rate], seed)."""
    jobs: list[Job] = []
    keys: list[tuple[str, ...]] = []
    for seed in seeds:
        for name, r in regimes.items():
            for key, job in _regime_jobs(name, r, seed):
                keys.append((*key, str(seed)))
                jobs.append(job)
    return jobs, keys


def _regime_jobs(name: str, r: Regime, seed: int) -> list[tuple[tuple[str, ...], Job]]:
    out: list[tuple[tuple[str, ...], Job]] = []
    trace = _trace(r, f"{name} seed {seed}", seed=seed)
    train = _trace(r, f"{name} seed {seed + TRAIN_SEED_OFFSET}", seed=seed + TRAIN_SEED_OFFSET)
    human, human_train = _human(r, seed), _human(r, seed + TRAIN_SEED_OFFSET)
    noise = _trace(r, f"{name} random seed {seed}", seed=seed, uniform_actions=True)
    for p in (*POLICIES, *BOUNDS):
        out.append(((name, "default", p), (trace, r, p, seed)))
        out.append(((name, "human", p), (human, r, p, seed)))
        out.append(((name, "ideal", p), (trace, _ideal(r), p, seed)))
    for p in ("none", *LEARNED):
        out.append(((name, "random", p), (noise, r, p, seed)))
    for p in LEARNED:
        out.append(((name, "heldout", p), (trace, r, p, seed, train)))
        out.append(((name, "heldout-human", p), (human, r, p, seed, human_train)))
    for p in SWEPT:
        for rate in r.sweep_rates:
            out.append(((name, "sweep", p, str(rate)), (trace, sweep_regime(r, rate), p, seed)))
    return out


def _pooled(
    keys: list[tuple[str, ...]], results: list[dict[str, Any]]
) -> dict[tuple[str, ...], dict[str, Any]]:
    """Runs of the same key over the seeds, pooled (``metrics.pool_runs``)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for key, metrics in zip(keys, results, strict=True):
        groups.setdefault(key[:-1], []).append(metrics)
    return {key: pool_runs(runs) for key, runs in groups.items()}


def _per_seed(
    name: str, keys: list[tuple[str, ...]], results: list[dict[str, Any]]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per scenario (default, human) and seed: each run's mean wait, billed GPU-seconds and
    share of the honest oracle's reduction (the spread the pooled figures hide)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for scenario in ("default", "human"):
        by_seed: dict[str, dict[str, dict[str, Any]]] = {}
        for key, m in zip(keys, results, strict=True):
            if key[0] == name and key[1] == scenario:
                by_seed.setdefault(key[-1], {})[key[2]] = dict(m)
        for table in by_seed.values():
            add_comparisons(table)
        out[scenario] = {
            seed: {p: {k: m.get(k) for k in ("wait_mean_s", "gpu_s_billed",
                                             "oracle_reduction_share")}
                   for p, m in table.items()}
            for seed, table in by_seed.items()
        }  # fmt: skip
    return out


def _verdicts(block: dict[str, Any], policy: str) -> dict[str, Any]:
    """The issue's targets for ``policy`` in one regime's block (module doc)."""
    out: dict[str, Any] = {}
    for scenario in ("default", "human"):
        m = block[scenario][policy]
        share, gpu = m.get("oracle_reduction_share"), m["vs_oracle"]["gpu_s_billed"]
        out[scenario] = {
            "oracle_reduction_share": share, "gpu_vs_oracle": gpu,
            "gpu_vs_none": m["vs_none"]["gpu_s_billed"],
            "target_90pct_at_1_5x": share is not None and gpu is not None
            and share >= SHARE_TARGET and gpu <= GPU_TARGET,
        }  # fmt: skip
    curve = [(p["gpu_s_billed"], p["wait_mean_s"]) for p in block["sweep"]["uniform"]]
    m = block["default"][policy]
    uniform_at = _interp(curve, m["gpu_s_billed"])
    out["uniform_wait_at_equal_gpu_s"] = uniform_at
    out["target_beats_uniform_at_equal_gpu"] = (
        None if policy == "uniform" else m["wait_mean_s"] < uniform_at
    )
    rnd = block["random"]
    ratio = rnd[policy]["gpu_s_billed"] / rnd["none"]["gpu_s_billed"]
    out["random_gpu_vs_none"] = ratio
    out["target_random_gpu_le_1_05x_none"] = ratio <= RANDOM_TARGET
    for label in ("heldout", "heldout-human"):
        out[f"ece_{label}"] = block[label][policy]["calibration"].get("ece")
        out[f"ece_top_label_{label}"] = block[label][policy]["calibration"].get("ece_top_label")
    ece = out["ece_heldout"]
    out["target_ece_le_0_05"] = ece is not None and ece <= ECE_TARGET
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _main_table(name: str, scenario: str, per: dict[str, dict[str, Any]]) -> str:
    ref = next(iter(per.values())).get("oracle_reference", "?")
    table = new_table(f"{name} / {scenario} (honest oracle = {ref})",
                      ["run", "wait s", "p95 s", "hit", "in-flight", "GPU-s billed",
                       "idle warm", "cold (spec)", "pre-arrival", "% oracle",
                       "% oracle policy", "% arrived", "GPU/oracle", "GPU/none"],
                      numeric_from=1)  # fmt: skip
    for p, m in per.items():
        table.add_row(
            p, f"{m['wait_mean_s']:.1f}", f"{m['wait_p95_s']:.1f}", _pct(m["hit_rate"]),
            _pct(m["inflight_rate"]), f"{m['gpu_s_billed']:.0f}", f"{m['gpu_s_idle_warm']:.0f}",
            f"{m['cold_starts']} ({m.get('cold_starts_speculative', 0)})",
            _pct(m["lead"]["before_arrival"]),
            _pct(m.get("oracle_reduction_share")),
            _pct(m.get("oracle_policy_reduction_share")),
            _pct(m.get("arrived_reduction_share")),
            _x(m.get("vs_oracle", {}).get("gpu_s_billed")),
            _x(m.get("vs_none", {}).get("gpu_s_billed")),
        )  # fmt: skip
    return table_text(table, 170)


def _calibration_table(name: str, block: dict[str, Any]) -> str:
    table = new_table(f"{name}: calibration of next-action predictions",
                      ["policy", "viewers", "scored", "ECE proposed", "ECE top-label",
                       "ECE all actions", "log-loss nats", "top-1 acc", "mean top P"],
                      numeric_from=2)  # fmt: skip
    for scenario in ("default", "heldout", "human", "heldout-human"):
        for p in LEARNED:
            c = block[scenario][p]["calibration"]
            if not c.get("scored"):
                continue
            table.add_row(p, scenario, str(c["scored"]), f"{c['ece']:.3f}",
                          f"{c['ece_top_label']:.3f}", f"{c['ece_all_actions']:.3f}",
                          f"{c['log_loss_nats']:.3f}", _pct(c["top1_accuracy"]),
                          f"{c['mean_top_probability']:.2f}")  # fmt: skip
    return table_text(table, 160)


def _reliability_text(name: str, policy: str, block: dict[str, Any]) -> str:
    rows = block["heldout"][policy]["calibration"].get("reliability", [])
    cells = ", ".join(f"[{r['lo']:.1f},{r['hi']:.1f}) n={r['n']} P={r['predicted']:.2f} "
                      f"seen={r['realised']:.2f}" for r in rows)  # fmt: skip
    return f"  reliability {name} {policy} (held-out, proposed P): {cells}"


def _ceiling_table(report: dict[str, Any], default_policy: str) -> str:
    """Per regime and viewers: the predictive ceiling (``bayes``'s share of the honest oracle's
    saving) beside the default policy's, and the default's share of the ceiling."""
    table = new_table("predictive ceiling: the generator's own law (bayes) vs the default policy",
                      ["regime", "viewers", "bayes % oracle", "bayes GPU/oracle",
                       f"{default_policy} % oracle", f"{default_policy} % of ceiling"],
                      numeric_from=2)  # fmt: skip
    for name, block in report["regimes"].items():
        for scenario in ("default", "human", "ideal"):
            b, d = block[scenario][CEILING], block[scenario][default_policy]
            cb, cd = b.get("oracle_reduction_share"), d.get("oracle_reduction_share")
            of = None if cb is None or cd is None or cb <= 0 else cd / cb
            table.add_row(name, scenario, _pct(cb), _x(b.get("vs_oracle", {}).get("gpu_s_billed")),
                          _pct(cd), _pct(of))  # fmt: skip
    return table_text(table, 130)


def _verdict_table(report: dict[str, Any], default_policy: str) -> str:
    table = new_table("verdicts against issue 11's targets",
                      ["policy", "regime", "% oracle", "GPU/oracle", "90%@1.5x",
                       "human %/GPU", "human 90%", "beats uniform", "random GPU/none",
                       "<=1.05x", "ECE held-out", "<=0.05", "top-label ECE"],
                      numeric_from=2)  # fmt: skip
    yes = {True: "yes", False: "NO", None: "-"}
    for p in LEARNED:
        for name, block in report["regimes"].items():
            v = block["verdicts"][p]
            d, h = v["default"], v["human"]
            table.add_row(
                p + (" (default)" if p == default_policy else ""), name,
                _pct(d["oracle_reduction_share"]), _x(d["gpu_vs_oracle"]),
                yes[d["target_90pct_at_1_5x"]],
                f"{_pct(h['oracle_reduction_share'])} / {_x(h['gpu_vs_oracle'])}",
                yes[h["target_90pct_at_1_5x"]], yes[v["target_beats_uniform_at_equal_gpu"]],
                _x(v["random_gpu_vs_none"]), yes[v["target_random_gpu_le_1_05x_none"]],
                "-" if v["ece_heldout"] is None else f"{v['ece_heldout']:.3f}",
                yes[v["target_ece_le_0_05"]],
                "-" if v["ece_top_label_heldout"] is None else f"{v['ece_top_label_heldout']:.3f}",
            )  # fmt: skip
    return table_text(table, 190)


def _summary(report: dict[str, Any], default_policy: str) -> dict[str, Any]:
    """Per policy: does it meet each target in every shipped regime?"""
    out: dict[str, Any] = {}
    for p in LEARNED:
        vs = [block["verdicts"][p] for block in report["regimes"].values()]
        out[p] = {
            "90pct_of_oracle_at_1_5x_gpu_every_regime": all(
                v["default"]["target_90pct_at_1_5x"] for v in vs),
            "same_on_human_viewers": all(v["human"]["target_90pct_at_1_5x"] for v in vs),
            "beats_uniform_at_equal_gpu_every_regime": None if p == "uniform" else all(
                v["target_beats_uniform_at_equal_gpu"] for v in vs),
            "random_gpu_le_1_05x_none_every_regime": all(
                v["target_random_gpu_le_1_05x_none"] for v in vs),
            "ece_le_0_05_every_regime": all(v["target_ece_le_0_05"] for v in vs),
        }  # fmt: skip
    out["predictive_ceiling"] = {
        name: {sc: block[sc][CEILING].get("oracle_reduction_share") for sc in ("default", "human")}
        for name, block in report["regimes"].items()
    }
    out["default_policy"] = default_policy
    out["default_policy_meets_all"] = default_policy in out and all(
        x is not False for x in out[default_policy].values() if isinstance(x, bool)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="first world and trace seed")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds seed..seed+N-1, pooled (default 3)")  # fmt: skip
    parser.add_argument("--default-policy", default=Settings().speculation.policy,
                        help="the policy the verdicts are headed by (default: the built-in "
                             "[speculation] policy; run like the learned ones if it is not "
                             "one of them)")  # fmt: skip
    parser.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS / "policies.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "policies.png")
    args = parser.parse_args(argv)
    _include(args.default_policy)
    started = time.perf_counter()
    regimes = {name: load_regime(name) for name in args.regimes.split(",")}
    seeds = range(args.seed, args.seed + max(1, args.seeds))
    jobs, keys = _jobs(regimes, seeds)
    results = run_many(jobs, args.workers)
    pooled = _pooled(keys, results)

    report: dict[str, Any] = {"seeds": list(seeds), "platform": platform.platform(),
                              "regimes": {}}  # fmt: skip
    panels = {}
    for name, r in regimes.items():
        got = {k: m for k, m in pooled.items() if k[0] == name}
        block: dict[str, Any] = {"regime": {
            "source": r.source, "generation_mean_gpu_s": r.generation.mean,
            "chunk_duration_s": r.chunk_duration_s, "think_s": r.timing.think_s,
            "pool": asdict(r.pool), "budget": asdict(r.budget), "synth": asdict(r.synth),
            "policy_params": {k: dict(v) for k, v in r.policy_params.items()},
        }}  # fmt: skip
        for scenario in ("default", "human", "ideal", "random", "heldout", "heldout-human"):
            table = {k[2]: m for k, m in got.items() if k[1] == scenario}
            add_comparisons(table)
            block[scenario] = table
        sweep: dict[str, list[dict[str, Any]]] = {p: [] for p in SWEPT}
        for k, m in got.items():
            if k[1] == "sweep":
                sweep[k[2]].append({"rate_gpu_s_per_s": float(k[3]),
                                    **{s: m[s] for s in SWEEP_KEYS}})  # fmt: skip
        for p in ("none", *BOUNDS):
            once = {s: block["default"][p][s] for s in SWEEP_KEYS}
            sweep[p] = [{"rate_gpu_s_per_s": None, **once}]
        block["sweep"] = sweep
        block["verdicts"] = {p: _verdicts(block, p) for p in LEARNED}
        block["per_seed"] = _per_seed(name, keys, results)
        report["regimes"][name] = block
        panels[name] = (block["default"], sweep)
        for scenario in ("default", "human", "ideal", "random"):
            print(_main_table(name, scenario, block[scenario]))
        print(_calibration_table(name, block))
        for p in ("markov", "lookahead"):
            print(_reliability_text(name, p, block))
    report["summary"] = _summary(report, args.default_policy)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(_ceiling_table(report, args.default_policy))
    print(_verdict_table(report, args.default_policy))
    print(json.dumps(report["summary"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    plot_tradeoff(panels, args.plot)
    print(f"\n{len(jobs)} runs; wrote {args.out} and {args.plot} in {report['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
