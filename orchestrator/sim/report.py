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
    ("hit_rate", "hit", "pct"),
    ("inflight_rate", "infl", "pct"),
    ("miss_rate", "miss", "pct"),
    ("wait_mean_s", "wait", "s"),
    ("wait_p50_s", "p50", "s"),
    ("wait_p95_s", "p95", "s"),
    ("wait_p99_s", "p99", "s"),
    ("gpu_s_per_served_chunk", "gpu/chunk", "s"),
    ("gpu_s_total", "gpu total", "s"),
    ("waste_ratio", "waste", "pct"),
    ("usd_per_viewer_hour", "$/view-h", "usd"),
    ("vs_none.wait_mean_s", "wait/none", "x"),
    ("vs_oracle.wait_mean_s", "wait/orc", "x"),
    ("vs_none.gpu_s_total", "gpu/none", "x"),
    ("vs_oracle.gpu_s_total", "gpu/orc", "x"),
    ("oracle_reduction_share", "of orc", "pct"),
)
"""(metric key, column title, format) of the printed table; dotted keys read nested dicts."""


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
    return f"{value:.1f}" if abs(value) < 1e4 else f"{value:.0f}"


def format_table(per_policy: Mapping[str, Mapping[str, Any]], title: str = "") -> str:
    """A fixed-width text table, one row per policy, columns ``COLUMNS``."""
    header = ["policy", *(title_ for _, title_, _ in COLUMNS)]
    rows = [header]
    for name, metrics in per_policy.items():
        rows.append([name, *(_fmt(_get(metrics, k), kind) for k, _, kind in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [title] if title else []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _points(
    name: str, metrics: Mapping[str, Any], sweep: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[tuple[float, float, float, float]]:
    """(GPU-s, mean wait, hit rate, hit + in-flight rate) per sweep point, by GPU-s."""
    rows = list(sweep.get(name, ())) or [metrics]
    keys = ("gpu_s_total", "wait_mean_s", "hit_rate")
    return sorted((*(p[k] for k in keys), p["hit_rate"] + p["inflight_rate"]) for p in rows)


def plot_tradeoff(
    panels: Mapping[str, tuple[Mapping[str, Mapping[str, Any]], Mapping[str, Any]]],
    path: Path | str,
) -> None:
    """Write a PNG: one row per panel (e.g. per regime), columns mean wait and hit rate against
    GPU-seconds; one line per policy.

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
            style = "o-" if len(pts) > 1 else "o"
            line = ax_wait.plot(gpu, [p[1] for p in pts], style, label=name, markersize=4)
            color = line[0].get_color()
            ax_hit.plot(gpu, [100 * p[2] for p in pts], style, color=color, label=name, ms=4)
            ax_hit.plot(gpu, [100 * p[3] for p in pts], style.replace("-", "--"), color=color,
                        ms=3, alpha=0.6)  # fmt: skip
        ax_wait.set_title(f"{title}: mean wait")
        ax_wait.set_xlabel("GPU-hours")
        ax_wait.set_ylabel("mean wait (s)")
        ax_hit.set_title(f"{title}: hit rate (solid), hit + in-flight (dashed)")
        ax_hit.set_xlabel("GPU-hours")
        ax_hit.set_ylabel("share of requests (%)")
        for ax in (ax_wait, ax_hit):
            ax.grid(True, alpha=0.3)
        ax_hit.legend(fontsize=8, loc="best")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
