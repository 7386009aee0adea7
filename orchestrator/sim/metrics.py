"""Per-policy metrics of a simulation run, and their ratios to ``none`` and ``oracle``.

Definitions (times in seconds, GPU time in GPU-seconds, money in USD):

- Requests are the trace's steps (a viewer picking a direction). A memory's root chunk is
  requested on arrival and cannot be speculated; it is reported apart (``root_*``).
- hit / in-flight / miss rate: share of requests whose chunk was ready / being generated / not
  started when requested. wait: request to ready; ``wait_p50_s`` etc. are percentiles with linear
  interpolation between order statistics (numpy's default).
- ``gpu_s_total``: every job's slot time (root, demand and speculative; cancelled jobs up to the
  cancel), cold-start load included (``gpu_s_cold_start``: the startup seconds of jobs on a
  booting container; ``cold_starts_speculative`` counts the boots speculative jobs caused).
  ``gpu_s_idle_warm``: billed seconds of containers up and idle
  (``GpuPool.close``). ``gpu_s_billed`` = gpu_s_total + gpu_s_idle_warm: what Modal charges,
  the GPU figure the ratios and targets use. ``gpu_s_per_served_chunk`` = gpu_s_total /
  (requests + root requests).
- ``gpu_s_speculative``: jobs started speculatively (promoted ones included); such a job is
  *used* when a request found it running or its chunk ready. ``waste_ratio`` = speculative
  GPU-seconds of unused jobs / all speculative GPU-seconds (0 when nothing was speculated).
- ``lead``: for each request, when the job that produced its chunk started, relative to the
  viewer: ``before_arrival`` (another viewer's chunk, or one started for a viewer not yet
  there: only foresight across viewers gets it), ``steps_2_plus`` (before the viewer asked
  for the chunk two steps earlier: deeper than depth 2 from the cursor), ``step_1`` (while the
  viewer watched or waited for the step before) and ``on_request`` (at or after the request):
  shares of requests.
- ``usd_per_viewer_hour`` = gpu_s_total x price / viewing hours, viewing = chunks served x chunk
  duration (the same for every policy on one trace, so it compares spending directly).
- Comparisons: ``vs_none`` / ``vs_oracle`` hold ratios metric / baseline's metric for
  ``RATIO_KEYS`` (None when the baseline is 0 and the metric is not). "The oracle" is the honest
  one (``orchestrator.sim.bound.honest_oracle``: the better, by mean wait, of the clairvoyant
  schedule and the oracle policy's run), named in ``oracle_reference``. ``wait_reduction_s`` =
  none's mean wait - this mean wait; ``oracle_reduction_share`` = that / the honest oracle's
  reduction (None when it saves less than 1 ms); ``oracle_policy_reduction_share`` the same
  against the per-cursor oracle policy (the old, inflated reference);
  ``serial_chain_reduction_share`` against the serial-chain lower bound,
  ``arrived_reduction_share`` against ``clairvoyant-arrived`` (knows only arrived viewers);
  ``extra_gpu_s_vs_none`` = gpu_s_billed - none's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.sim.bound import ARRIVED, SERIAL_CHAIN, honest_oracle
from orchestrator.sim.engine import SimResult
from orchestrator.sim.records import COLD, LEAD_KEYS, SPECULATIVE, USED
from orchestrator.sim.regime import Regime

__all__ = ["RATIO_KEYS", "add_comparisons", "percentile", "pool_runs", "summarize"]

RATIO_KEYS: tuple[str, ...] = (
    "hit_rate",
    "inflight_rate",
    "miss_rate",
    "wait_mean_s",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "gpu_s_total",
    "gpu_s_billed",
    "gpu_s_per_served_chunk",
    "waste_ratio",
    "usd_per_viewer_hour",
)
"""The metrics given as ratios to the ``none`` and ``oracle`` runs."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _r(value: float) -> float:
    """12 significant digits: readable JSON, far below any effect measured here."""
    return float(f"{value:.12g}")


def summarize(result: SimResult, regime: Regime) -> dict[str, Any]:
    """The metrics of one run (module doc), as a JSON-ready dict, from its ``Tally``
    (``SimResult.figures``: streamed by the engine, or built from the records)."""
    t = result.figures()
    waits = t.waits
    n = len(waits)
    outcomes = t.outcomes
    gpu, startup, flags = t.gpu_s, t.startup_s, t.flags
    spec = [g for g, f in zip(gpu, flags, strict=True) if f & SPECULATIVE]
    gpu_total = sum(gpu)
    gpu_spec = sum(spec)
    gpu_wasted = sum(g for g, f in zip(gpu, flags, strict=True) if f & SPECULATIVE and not f & USED)
    gpu_cold = sum(min(s, g) for s, g, f in zip(startup, gpu, flags, strict=True) if f & COLD)
    roots = len(t.root_waits)
    served = n + roots
    usd = gpu_total * regime.usd_per_gpu_s
    viewer_hours = result.viewing_s / 3600.0
    reasons = t.reasons
    leads = sum(t.lead.values())
    return {
        "requests": n,
        "hits": outcomes["hit"],
        "inflight": outcomes["inflight"],
        "misses": outcomes["miss"],
        "hit_rate": _r(_share(outcomes["hit"], n)),
        "inflight_rate": _r(_share(outcomes["inflight"], n)),
        "miss_rate": _r(_share(outcomes["miss"], n)),
        "wait_mean_s": _r(sum(waits) / n if n else 0.0),
        "wait_p50_s": _r(percentile(waits, 50)),
        "wait_p95_s": _r(percentile(waits, 95)),
        "wait_p99_s": _r(percentile(waits, 99)),
        "wait_max_s": _r(max(waits, default=0.0)),
        "root_requests": roots,
        "root_wait_mean_s": _r(sum(t.root_waits) / roots if roots else 0.0),
        "served_chunks": served,
        "gpu_s_total": _r(gpu_total),
        "gpu_s_demand": _r(gpu_total - gpu_spec),
        "gpu_s_speculative": _r(gpu_spec),
        "gpu_s_wasted": _r(gpu_wasted),
        "gpu_s_cold_start": _r(gpu_cold),
        "gpu_s_idle_warm": _r(result.idle_gpu_s),
        "gpu_s_billed": _r(gpu_total + result.idle_gpu_s),
        "gpu_s_per_served_chunk": _r(_share(gpu_total, served)),
        "waste_ratio": _r(_share(gpu_wasted, gpu_spec)),
        "jobs": len(flags),
        "speculative_jobs": len(spec),
        "speculative_used": sum(1 for f in flags if f & SPECULATIVE and f & USED),
        "cancelled_jobs": sum(reasons.values()),
        "cancel_reasons": dict(sorted(reasons.items())),
        "cold_starts": result.cold_starts,
        "cold_starts_speculative": sum(1 for f in flags if f & SPECULATIVE and f & COLD),
        "usd_total": _r(usd),
        "viewer_hours": _r(viewer_hours),
        "usd_per_viewer_hour": _r(_share(usd, viewer_hours)),
        "lead": {k: _r(_share(t.lead[k], leads)) for k in LEAD_KEYS},
        "peak_running": result.peak_running,
        "peak_speculative": result.peak_speculative,
        "plans": result.plans,
        "sim_end_s": _r(result.end_s),
    }


def _ratio(value: float, base: float) -> float | None:
    if base == 0:
        return 1.0 if value == 0 else None
    return _r(value / base)


def add_comparisons(per_policy: Mapping[str, dict[str, Any]]) -> None:
    """Add ``vs_none``, ``vs_oracle``, ``oracle_reference``, ``wait_reduction_s``, the reduction
    shares and ``extra_gpu_s_vs_none`` to every run's metrics, in place, when those runs exist
    (module doc; the oracle is ``bound.honest_oracle``)."""
    none = per_policy.get("none")
    reference = honest_oracle(per_policy)
    oracle = per_policy.get(reference) if reference is not None else None
    shares = (("oracle_reduction_share", oracle), ("oracle_policy_reduction_share",
              per_policy.get("oracle")), ("serial_chain_reduction_share",
              per_policy.get(SERIAL_CHAIN)), ("arrived_reduction_share",
              per_policy.get(ARRIVED)))  # fmt: skip
    for metrics in per_policy.values():
        for label, base in (("vs_none", none), ("vs_oracle", oracle)):
            if base is not None:
                metrics[label] = {k: _ratio(metrics[k], base[k]) for k in RATIO_KEYS}
        if reference is not None:
            metrics["oracle_reference"] = reference
        if none is None:
            continue
        reduction = none["wait_mean_s"] - metrics["wait_mean_s"]
        metrics["wait_reduction_s"] = _r(reduction)
        metrics["extra_gpu_s_vs_none"] = _r(metrics["gpu_s_billed"] - none["gpu_s_billed"])
        for label, base in shares:
            if base is not None:
                best = none["wait_mean_s"] - base["wait_mean_s"]
                metrics[label] = _r(reduction / best) if best > 1e-3 else None


_SUMMED = ("requests", "hits", "inflight", "misses", "root_requests", "served_chunks",
           "gpu_s_total", "gpu_s_demand", "gpu_s_speculative", "gpu_s_wasted", "gpu_s_cold_start",
           "gpu_s_idle_warm", "gpu_s_billed", "jobs", "speculative_jobs", "speculative_used",
           "cancelled_jobs", "cold_starts", "cold_starts_speculative", "usd_total",
           "viewer_hours", "plans")  # fmt: skip
_AVERAGED = ("wait_p50_s", "wait_p95_s", "wait_p99_s")  # percentiles do not pool: their mean
_MAXED = ("wait_max_s", "peak_running", "peak_speculative", "sim_end_s")


def _weighted(runs: Sequence[Mapping[str, Any]], key: str, weight: str) -> float:
    total = sum(m[weight] for m in runs)
    return _share(sum(m[key] * m[weight] for m in runs), total)


def _pool_calibration(cals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    scored = [c for c in cals if c.get("scored")]
    out: dict[str, Any] = {"scored": sum(c.get("scored", 0) for c in cals),
                           "unscored": sum(c.get("unscored", 0) for c in cals)}  # fmt: skip
    if not scored:
        return out
    bins: dict[float, dict[str, float]] = {}
    for c in scored:
        for row in c["reliability"]:
            b = bins.setdefault(row["lo"], {"lo": row["lo"], "hi": row["hi"], "n": 0,
                                            "p": 0.0, "seen": 0.0})  # fmt: skip
            b["n"] += row["n"]
            b["p"] += row["n"] * row["predicted"]
            b["seen"] += row["n"] * row["realised"]
    table = [
        {"lo": b["lo"], "hi": b["hi"], "n": int(b["n"]), "predicted": round(b["p"] / b["n"], 6),
         "realised": round(b["seen"] / b["n"], 6)}
        for _, b in sorted(bins.items())
    ]  # fmt: skip
    n = sum(row["n"] for row in table)
    gap = sum(row["n"] * abs(row["predicted"] - row["realised"]) for row in table)
    out.update({"reliability": table, "ece": round(gap / n, 6) if n else None})
    for key in (
        "ece_all_actions",
        "ece_top_label",
        "log_loss_nats",
        "uniform_log_loss_nats",
        "brier",
        "top1_accuracy",
        "mean_top_probability",
        "proposed_per_request",
    ):
        out[key] = round(_weighted(scored, key, "scored"), 6)  # pooled by requests scored
    return out


def pool_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One run's metrics from several (e.g. seeds) of the same policy and scenario, pooled as
    one larger experiment: counts and GPU-seconds summed, rates and mean waits recomputed over
    all requests, percentiles averaged over the runs (they do not pool), the reliability table
    summed bin by bin and the ECE recomputed from it; other calibration scores are weighted by
    requests scored. ``pooled_runs`` says how many were pooled.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("pool_runs needs at least one run")
    out: dict[str, Any] = {k: sum(m[k] for m in runs) for k in _SUMMED if k in runs[0]}
    out.update({k: _r(sum(m[k] for m in runs) / len(runs)) for k in _AVERAGED})
    out.update({k: max(m[k] for m in runs) for k in _MAXED})
    n, served = out["requests"], out["served_chunks"]
    for rate, count in (
        ("hit_rate", "hits"),
        ("inflight_rate", "inflight"),
        ("miss_rate", "misses"),
    ):
        out[rate] = _r(_share(out[count], n))
    out["wait_mean_s"] = _r(_weighted(runs, "wait_mean_s", "requests"))
    out["root_wait_mean_s"] = _r(_weighted(runs, "root_wait_mean_s", "root_requests"))
    out["gpu_s_per_served_chunk"] = _r(_share(out["gpu_s_total"], served))
    out["waste_ratio"] = _r(_share(out["gpu_s_wasted"], out["gpu_s_speculative"]))
    out["usd_per_viewer_hour"] = _r(_share(out["usd_total"], out["viewer_hours"]))
    reasons: Counter[str] = Counter()
    for m in runs:
        reasons.update(m.get("cancel_reasons", {}))
    out["cancel_reasons"] = dict(sorted(reasons.items()))
    out["lead"] = {k: _r(_weighted([{**m["lead"], "requests": m["requests"]} for m in runs], k,
                                   "requests")) for k in runs[0]["lead"]}  # fmt: skip
    if "calibration" in runs[0]:
        out["calibration"] = _pool_calibration([m["calibration"] for m in runs])
    out["pooled_runs"] = len(runs)
    return out
