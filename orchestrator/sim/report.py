"""Printing and plotting simulation results: the per-policy table and the trade-off plot.

``format_table`` renders the metrics of ``orchestrator.sim.metrics`` one row per policy (times in
seconds, GPU time in GPU-seconds, money in USD). ``plot_tradeoff`` draws the ``--sweep-budget``
curves with matplotlib (Agg backend, no display needed): mean wait, and ready hits (solid) and
ready + in-flight hits (dashed), against total GPU-hours, one colour per policy; without a sweep
each policy is one point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "format_table", "plot_tradeoff"]

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("hit_rate", "hit (%)", "pct"),
    ("inflight_rate", "in-flight (%)", "pct"),
    ("miss_rate", "miss (%)", "pct"),
    ("wait_mean_s", "mean wait (s)", "s"),
    ("wait_p50_s", "p50 wait (s)", "s"),
    ("wait_p95_s", "p95 wait (s)", "s"),
    ("wait_p99_s", "p99 wait (s)", "s"),
    ("gpu_s_per_served_chunk", "GPU-s per served chunk", "s"),
    ("gpu_s_total", "GPU-s total in jobs (cold loads incl.)", "s"),
    ("gpu_s_idle_warm", "GPU-s idle warm (billed)", "s"),
    ("gpu_s_billed", "GPU-s billed", "s"),
    ("waste_ratio", "wasted GPU (%)", "pct"),
    ("usd_per_viewer_hour", "USD per viewer-hour", "usd"),
    ("vs_none.wait_mean_s", "mean wait vs none (x)", "x"),
    ("vs_oracle.wait_mean_s", "mean wait vs oracle (x)", "x"),
    ("vs_none.gpu_s_billed", "billed GPU-s vs none (x)", "x"),
    ("vs_oracle.gpu_s_billed", "billed GPU-s vs oracle (x)", "x"),
    ("oracle_reduction_share", "of oracle's wait saving (%)", "pct"),
    ("oracle_policy_reduction_share", "of oracle policy's saving (%)", "pct"),
    ("serial_chain_reduction_share", "of serial-chain bound's saving (%)", "pct"),
    ("arrived_reduction_share", "of arrived-viewers bound's saving (%)", "pct"),
    ("calibration.ece", "calibration: ECE of proposed P", "f3"),
    ("calibration.ece_top_label", "calibration: top-label ECE", "f3"),
    ("calibration.log_loss_nats", "calibration: log-loss (nats)", "f3"),
)
"""(metric key, column title with its unit, format) of the printed table; dotted keys read
nested dicts. "vs none" / "vs oracle" are ratios to the no-speculation baseline and to the honest
oracle (``orchestrator.sim.bound``: a schedule knowing every viewer's whole future); "of oracle's
wait saving" is the share of the honest oracle's mean-wait reduction (over none) that the run
achieves, "of oracle policy's" the same against the per-cursor ``oracle`` policy, "of
serial-chain bound's" against the lower bound (unlimited slots); the calibration rows score the
policy's next-action probabilities against what the viewers did (``sim.calibration``)."""


def _get(metrics: Mapping[str, Any], key: str) -> Any:
    value: Any = metrics
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "usd":
        return f"{value:.2f}"
    if kind == "x":
        return f"{value:.2f}x"
    if kind == "f3":
        return f"{value:.3f}"
    return f"{value:.1f}" if abs(value) < 1e4 else f"{value:.0f}"


def format_table(
    per_policy: Mapping[str, Mapping[str, Any]], title: str = "", width: int | None = None
) -> str:
    """A rich text table: one row per metric of ``COLUMNS`` (its title carries its unit), one
    column per policy (16 metrics side by side would not fit a terminal)."""
    from orchestrator.tables import new_table, table_text

    table = new_table(title, ["metric", *per_policy], numeric_from=1)
    for key, label, kind in COLUMNS:
        table.add_row(label, *(_fmt(_get(m, key), kind) for m in per_policy.values()))
    return table_text(table, width)


def _points(
    name: str, metrics: Mapping[str, Any], sweep: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[tuple[float, float, float, float]]:
    """(billed GPU-s, mean wait, hit rate, hit + in-flight rate) per sweep point, in the sweep's
    order (rising refill rate: the curve is parametric in the budget, GPU-s need not rise)."""
    rows = list(sweep.get(name, ())) or [metrics]
    return [(p.get("gpu_s_billed", p["gpu_s_total"]), p["wait_mean_s"], p["hit_rate"],
             p["hit_rate"] + p["inflight_rate"]) for p in rows]  # fmt: skip


_MARKERS = {"none": ("X", 9), "clairvoyant": ("*", 12), "serial-chain": ("P", 9)}
"""Single points that must stay visible under the curves: the baseline and the two bounds."""


def plot_tradeoff(
    panels: Mapping[str, tuple[Mapping[str, Mapping[str, Any]], Mapping[str, Any]]],
    path: Path | str,
) -> None:
    """Write a PNG: one row per panel (e.g. per regime), columns mean wait and hit rate against
    billed GPU-hours (``gpu_s_billed``, else ``gpu_s_total``); one line per policy.

    Args:
        panels: title -> (per-policy metrics, sweep: policy -> list of sweep points with
            ``gpu_s_total``, ``wait_mean_s`` and ``hit_rate``; may be empty).
        path: where to write the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(panels))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.6 * rows), squeeze=False)
    for row, (title, (per_policy, sweep)) in enumerate(panels.items()):
        ax_wait, ax_hit = axes[row]
        for name, metrics in per_policy.items():
            pts = _points(name, metrics, sweep)
            gpu = [p[0] / 3600 for p in pts]
            mark, ms = _MARKERS.get(name, ("o", 4))
            style = f"{mark}-" if len(pts) > 1 else mark
            line = ax_wait.plot(gpu, [p[1] for p in pts], style, label=name, markersize=ms)
            color = line[0].get_color()
            ax_hit.plot(gpu, [100 * p[2] for p in pts], style, color=color, label=name, ms=ms)
            ax_hit.plot(gpu, [100 * p[3] for p in pts], style.replace("-", "--"), color=color,
                        ms=3, alpha=0.6)  # fmt: skip
        ax_wait.set_title(f"{title}: mean wait")
        ax_wait.set_xlabel("billed GPU-hours")
        ax_wait.set_ylabel("mean wait (s)")
        ax_hit.set_title(f"{title}: hit rate (solid), hit + in-flight (dashed)")
        ax_hit.set_xlabel("billed GPU-hours")
        ax_hit.set_ylabel("share of requests (%)")
        for ax in (ax_wait, ax_hit):
            ax.grid(True, alpha=0.3)
        ax_hit.legend(fontsize=8, loc="best")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
