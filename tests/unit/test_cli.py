"""The command line as a person reads it: --version, help, tables with units and percentages."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.demo import DemoStep, steps_table, summary
from orchestrator.sim.report import format_table
from orchestrator.tables import render_rows

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"rewind {version('rewind-orchestrator')}"


def test_serve_help_names_the_config_keys() -> None:
    # Rich markup read "[server]" as a style tag and printed "listen port ( port)".
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == 0
    assert "([server] port)" in result.output and "([server] host)" in result.output
    assert "( port)" not in result.output


def test_analytics_tables_print_rates_as_percentages() -> None:
    rows = [
        {"policy": "markov", "requests": 8, "hit_rate": 0.625, "miss_rate": 0.25, "p95_ms": 310.0},
        {"policy": "none", "requests": 8, "hit_rate": 0.0, "miss_rate": 1.0, "p95_ms": None},
    ]
    text = render_rows(rows, "table", "request hit rates")
    assert "62.5%" in text and "100.0%" in text and "0.625" not in text
    assert "p95 (ms)" in text and "request hit rates" in text
    # CSV and JSON keep fractions for programs.
    assert "0.625" in render_rows(rows, "csv") and "0.625" in render_rows(rows, "json")


def test_simulator_columns_say_what_they_are_with_units() -> None:
    metrics = {
        "hit_rate": 0.5, "inflight_rate": 0.25, "miss_rate": 0.25, "wait_mean_s": 1.5,
        "wait_p50_s": 1.0, "wait_p95_s": 3.0, "wait_p99_s": 4.0, "gpu_s_per_served_chunk": 60.0,
        "gpu_s_total": 600.0, "waste_ratio": 0.2, "usd_per_viewer_hour": 1.25,
        "vs_none": {"wait_mean_s": 0.5, "gpu_s_total": 1.4},
        "vs_oracle": {"wait_mean_s": 2.0, "gpu_s_total": 1.1}, "oracle_reduction_share": 0.6,
    }  # fmt: skip
    text = format_table({"markov": metrics}, "regime short")
    for title in ("mean wait (s)", "GPU-s total", "wasted GPU (%)", "mean wait vs oracle (x)",
                  "of oracle's wait saving (%)", "USD per viewer-hour"):  # fmt: skip
        assert title in text, title
    assert "of orc" not in text and "50.0%" in text and "60.0%" in text


def test_demo_prints_a_table_and_shares() -> None:
    steps = [
        DemoStep(1, "w", "miss", 0.4, 2.0, ()),
        DemoStep(2, "w", "hit", 0.01, 2.5, ("w@d1",)),
        DemoStep(3, "w", "hit", 0.01, 3.0, ("w@d1", "d@d1")),
        DemoStep(4, "d", "inflight", 0.2, 3.5, ()),
    ]
    table = steps_table(steps)
    assert "wait (s)" in table and "GPU-s so far" in table and "w@d1, d@d1" in table
    line = summary(steps)
    assert "2 hits (50%)" in line and "1 in-flight (25%)" in line and "1 misses (25%)" in line
