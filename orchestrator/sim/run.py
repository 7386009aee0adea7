"""Plain entry points of the simulator, for the CLI (``rewind simulate``, ``rewind traces synth``).

- ``simulate(...)``: run one trace under several policies (each on a fresh policy object, the same
  world), print the table, write the JSON report and optionally the trade-off plot.
- ``synth_traces(out, **knobs)``: write a synthetic trace (``orchestrator.sim.synth``).
- ``run_policies`` / ``budget_sweep``: the building blocks, used by ``benchmarks/policies.py``.

Policies replay the trace streamed (``orchestrator.sim.trace_file``: a run holds the active
sessions, not the trace; the oracle is told each session's future as it arrives); the bounds are
schedules over the whole trace, so each bound's run reads it all into memory (``read_trace``).

``none``, ``oracle`` and the two bounds of ``orchestrator.sim.bound`` (``clairvoyant``, the
honest oracle's schedule, and ``serial-chain``, the lower bound) are always run (added when not
asked for): every metric is reported as a ratio to none and to the honest oracle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from orchestrator.core.frontier import expected_gpu_s
from orchestrator.sim.bayes import BayesPolicy, knobs_of
from orchestrator.sim.bound import (
    ARRIVED,
    CLAIRVOYANT,
    SERIAL_CHAIN,
    arrived_clairvoyant,
    clairvoyant,
    serial_chain,
)
from orchestrator.sim.calibration import RecordingPolicy, pretrain, summarize_calibration
from orchestrator.sim.engine import Simulation
from orchestrator.sim.metrics import add_comparisons, summarize
from orchestrator.sim.regime import Regime, apply_budget_overrides, load_regime
from orchestrator.sim.report import format_table, plot_tradeoff
from orchestrator.sim.synth import knobs_from, write_synthetic
from orchestrator.sim.trace import SessionSource, Trace, future_actions
from orchestrator.sim.trace_file import TraceFile, open_trace
from policies import Policy, make_policy
from policies.registry import time_free

__all__ = [
    "budget_sweep",
    "build_policy",
    "parse_budget_overrides",
    "policy_names",
    "resolve_regime",
    "run_many",
    "run_one",
    "run_policies",
    "simulate",
    "synth_traces",
]

BASELINES = ("none", "oracle", CLAIRVOYANT, ARRIVED, SERIAL_CHAIN)
SWEEP_KEYS = ("gpu_s_total", "gpu_s_billed", "wait_mean_s", "hit_rate", "inflight_rate")
BOUNDS = {CLAIRVOYANT: clairvoyant, ARRIVED: arrived_clairvoyant, SERIAL_CHAIN: serial_chain}
"""Runs that are schedules over the whole trace, not policies (``orchestrator.sim.bound``)."""


def resolve_regime(
    regime: str | None = None,
    config: Path | str | None = None,
    budget_overrides: Mapping[str, float] | None = None,
) -> Regime:
    """The regime named ``regime`` or read from ``config`` (default ``a100``), with overrides."""
    loaded = load_regime(path=config) if config is not None else load_regime(regime or "a100")
    return apply_budget_overrides(loaded, budget_overrides)


def parse_budget_overrides(text: str | None) -> dict[str, float]:
    """``"rate_gpu_s_per_s=0.5,max_depth=3"`` -> ``{"rate_gpu_s_per_s": 0.5, "max_depth": 3.0}``.

    Field names are checked later (``apply_budget_overrides``).

    Raises:
        ValueError: an item without ``=`` or a value that is not a number.
    """
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--budget item {item.strip()!r} is not NAME=NUMBER") from None
    return out


def policy_names(policies: Sequence[str]) -> list[str]:
    """The requested policies (comma-separated items allowed) plus the baselines (``none``,
    ``oracle``, ``clairvoyant``, ``serial-chain``)."""
    names: list[str] = []
    for item in policies:
        for part in item.split(","):
            name = part.strip()
            name = name.lower() if ":" not in name else name
            if name and name not in names:
                names.append(name)
    return [*names, *(b for b in BASELINES if b not in names)]


def build_policy(
    name: str, regime: Regime, trace: Trace | None = None, meta: dict[str, Any] | None = None
) -> Policy:
    """A fresh policy: ``regime``'s ``[policies.NAME]`` params.

    The oracle starts knowing every session's future when given ``trace``; without it, it
    knows none until the replay tells it each session's as the session arrives
    (``Simulation(foresee=...)``, by default the policy's own ``foresee``), which is the same
    knowledge without holding the trace. ``bayes`` gets the generator's knobs from ``meta``
    (the trace's meta object; default ``trace.meta``; ``orchestrator.sim.bayes``).

    Raises:
        ValueError: as ``policies.make_policy``; ``bayes`` on a trace without generator knobs.
    """
    params: dict[str, Any] = regime.params_for(name)
    if name == "bayes":  # simulation only: the generator's own law (``sim.bayes``)
        return BayesPolicy(knobs_of(meta if meta is not None or trace is None else trace.meta),
                           **params)  # fmt: skip
    if name == "oracle":
        params["future"] = {} if trace is None else future_actions(trace)
    return make_policy(name, params)


def _whole(trace: SessionSource) -> Trace:
    """``trace`` in memory (a ``TraceFile`` is read whole; for the bounds)."""
    if isinstance(trace, TraceFile):
        return trace.read()
    assert isinstance(trace, Trace)
    return trace


def run_one(
    trace: SessionSource, regime: Regime, name: str, seed: int, train: Trace | None = None
) -> dict[str, Any]:
    """Simulate ``trace`` under policy ``name`` (or compute bound ``name``, ``BOUNDS``); its
    metrics (``metrics.summarize``) plus ``calibration`` (``sim.calibration``: the policy's
    next-action predictions scored against the viewers' actions).

    Args:
        trace: a ``Trace`` in memory, or a ``TraceFile`` (``open_trace``) the policy's replay
            streams (a bound reads it whole).
        train: other viewers the policy learns from before the run (``calibration.pretrain``),
            so that the predictions scored are on held-out viewers; None: it starts cold.
    """
    if name in BOUNDS:
        return summarize(BOUNDS[name](_whole(trace), regime, seed), regime)
    policy = build_policy(name, regime, meta=trace.meta)
    if train is not None:
        pretrain(policy, train)
    recorder = RecordingPolicy(policy)
    # records=False: the metrics read the streamed tally; memory stays flat in the trace. The
    # recorder hides the oracle's foresee: pass it.
    sim = Simulation(trace, regime, recorder, seed, cache_proposals=time_free(policy),
                     records=False, foresee=getattr(policy, "foresee", None))  # fmt: skip
    result = sim.run()
    metrics = summarize(result, regime)
    metrics["calibration"] = summarize_calibration(recorder.predictions, recorder.unscored)
    metrics["pretrained_on"] = None if train is None else train.source
    return metrics


Job = tuple[SessionSource, Regime, str, int] | tuple[SessionSource, Regime, str, int, Trace | None]
"""(trace, regime, policy or bound name, seed[, training trace]): one ``run_one``. A
``TraceFile`` as the trace is a small index (each process streams the file itself)."""


def _run_job(job: Job) -> dict[str, Any]:
    return run_one(*job)


def run_many(jobs: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    """``run_one`` for each job, spread over ``workers`` processes (results in job order)."""
    if workers <= 1 or len(jobs) <= 1:
        return [_run_job(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(_run_job, jobs))


def run_policies(
    trace: SessionSource, regime: Regime, names: Sequence[str], seed: int = 0, workers: int = 1
) -> dict[str, dict[str, Any]]:
    """Metrics per policy (each on a fresh policy object), with ratios to none and oracle."""
    results = run_many([(trace, regime, n, seed) for n in names], workers)
    per_policy = dict(zip(names, results, strict=True))
    add_comparisons(per_policy)
    return per_policy


def sweep_regime(regime: Regime, rate: float) -> Regime:
    """``regime`` with speculative refill ``rate`` (GPU-s/s), burst max(2 E, rate x burst_s)."""
    burst = max(2 * expected_gpu_s(regime.timing), rate * regime.sweep_burst_s)
    budget = replace(regime.budget, rate_gpu_s_per_s=rate, burst_gpu_s=burst)
    return replace(regime, budget=budget)


def budget_sweep(
    trace: SessionSource, regime: Regime, names: Sequence[str], seed: int = 0, workers: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """The trade-off curve: for each rate in ``regime.sweep_rates`` (``sweep_regime``), each
    policy's GPU-seconds, mean wait and hit rate. ``none`` spends the same at every rate, so it
    and the bounds do not depend on the budget, so they are run once. Returns policy -> points
    sorted by rate."""
    jobs: list[Job] = []
    labels: list[tuple[str, float, float]] = []
    for name in names:
        once = name == "none" or name in BOUNDS
        for rate in regime.sweep_rates[:1] if once else regime.sweep_rates:
            swept = sweep_regime(regime, rate)
            jobs.append((trace, swept, name, seed))
            labels.append((name, rate, swept.budget.burst_gpu_s))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for (name, rate, burst), m in zip(labels, run_many(jobs, workers), strict=True):
        out[name].append(
            {
                "rate_gpu_s_per_s": rate,
                "burst_gpu_s": burst,
                **{k: m[k] for k in SWEEP_KEYS},
            }
        )
    return out


def regime_summary(regime: Regime) -> dict[str, Any]:
    """The regime as reported in the JSON (units in the key names)."""
    return {
        "name": regime.name,
        "source": regime.source,
        "description": regime.description,
        "frames": regime.frames,
        "fps": regime.fps,
        "chunk_duration_s": round(regime.chunk_duration_s, 6),
        "generation": asdict(regime.generation),
        "generation_mean_gpu_s": regime.generation.mean,
        "pool": asdict(regime.pool),
        "timing": asdict(regime.timing),
        "usd_per_gpu_s": regime.usd_per_gpu_s,
        "policy_params": {k: dict(v) for k, v in regime.policy_params.items()},
    }


def simulate(
    trace_path: Path | str,
    policies: list[str],
    regime: str | None = None,
    config: Path | None = None,
    budget_overrides: dict[str, float] | None = None,
    seed: int = 0,
    out: Path | None = None,
    plot: Path | None = None,
    sweep_budget: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
    """Run ``trace_path`` under ``policies``; print the table; write JSON (and PNG) reports.

    Args:
        trace_path: a JSON Lines trace (DESIGN.md "Traces").
        policies: policy names or ``module:attr`` specs; items may be comma-separated.
            ``none`` and ``oracle`` are added when missing.
        regime: a regime name (``regimes/NAME.toml``); ignored when ``config`` is given;
            default ``a100``.
        config: a regime TOML file.
        budget_overrides: ``Budget`` fields to replace, e.g. ``{"rate_gpu_s_per_s": 0.5}``.
        seed: the world's seed (generation and cold-start times, policies' ``ctx.seed``).
        out: where to write the JSON report (None: not written).
        plot: where to write the PNG trade-off plot (None: not drawn).
        sweep_budget: also run the ``[sweep]`` rates of the regime (the trade-off curve).
        workers: processes to spread the runs over (1: in this process).

    Returns:
        The report: ``trace``, ``regime``, ``seed``, ``budget``, ``policies`` (metrics per
        policy, ``orchestrator.sim.metrics``) and, with ``sweep_budget``, ``sweep``.

    Raises:
        TraceError, RegimeError, ValueError (bad policy), SimulationError (a core bug).
    """
    trace = open_trace(trace_path)  # indexed: each run streams it (a bound reads it whole)
    chosen = resolve_regime(regime, config, budget_overrides)
    names = policy_names(policies)
    report: dict[str, Any] = {
        "trace": {
            "path": str(trace_path),
            "meta": trace.meta,
            "sessions": trace.session_count,
            "memories": len(trace.memories),
            "steps": trace.step_count,
        },
        "regime": regime_summary(chosen),
        "seed": seed,
        "budget": asdict(chosen.budget),
        "policies": run_policies(trace, chosen, names, seed, workers),
    }
    if sweep_budget:
        report["sweep"] = budget_sweep(trace, chosen, names, seed, workers)
    print(format_table(report["policies"], f"regime {chosen.name}: {trace_path}"))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if plot is not None:
        panel = (report["policies"], report.get("sweep", {}))
        plot_tradeoff({chosen.name: panel}, plot)
    return report


def synth_traces(out: Path, regime: str | None = None, **knobs: Any) -> int:
    """Write a synthetic trace to ``out``; returns the number of sessions written.

    Args:
        out: the JSON Lines file to write (its folder is created).
        regime: take the defaults from this regime's ``[synth]`` table (else ``SynthKnobs()``).
        **knobs: ``SynthKnobs`` fields (sessions, sessions_per_memory, arrival_rate_per_s,
            steps_min, steps_max, persistence, turn_bias, combo_share, memory_affinity,
            think_mean_s, think_cv, uniform_actions, seed, viewer, forward_share, turn_share,
            think_min_s, think_max_s); None values keep the default.

    Raises:
        ValueError: an unknown knob or a value out of range.
    """
    base = load_regime(regime).synth if regime is not None else None
    return write_synthetic(out, knobs_from(base, **knobs))
