"""``rewind simulate`` and ``rewind traces synth|export``: the simulator from the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analytics import parse_time
from orchestrator.errors import ApiError

traces_app = typer.Typer(help="Make traces: synthetic ones, or real traffic from the database.")


def simulate(
    trace: Annotated[
        Path,
        typer.Option(help="trace file, JSON Lines, one session a line (orchestrator/sim/trace.py)"),
    ],
    policy: Annotated[
        str, typer.Option(help="comma-separated policies; none and oracle are always added")
    ] = "none,uniform,markov,lookahead,oracle",
    regime: Annotated[
        str | None, typer.Option(help="a regime shipped in regimes/ (a100, short, crowd)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="a regime TOML file of your own")] = None,
    budget: Annotated[
        str | None, typer.Option(help="budget overrides, e.g. rate_gpu_s_per_s=0.5,max_depth=3")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of generation times and policies")] = 0,
    out: Annotated[Path, typer.Option(help="JSON results")] = Path("results.json"),
    plot: Annotated[Path | None, typer.Option(help="PNG trade-off plot")] = None,
    sweep_budget: Annotated[
        bool, typer.Option(help="sweep the speculative rate: wait and hit rate vs GPU-seconds")
    ] = False,
) -> None:
    """Replay a trace under each policy on a virtual clock and compare them."""
    from orchestrator.sim.regime import RegimeError
    from orchestrator.sim.run import parse_budget_overrides
    from orchestrator.sim.run import simulate as run_simulation
    from orchestrator.sim.trace import TraceError

    try:
        run_simulation(
            trace,
            policy.split(","),
            regime=regime,
            config=config,
            budget_overrides=parse_budget_overrides(budget),
            seed=seed,
            out=out,
            plot=plot,
            sweep_budget=sweep_budget,
        )
    except (TraceError, RegimeError, ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"results written to {out}" + (f", plot to {plot}" if plot else ""))


@traces_app.command()
def synth(
    out: Annotated[Path, typer.Option(help="trace file to write")] = Path("trace.jsonl"),
    regime: Annotated[
        str | None, typer.Option(help="take the knobs' defaults from this regime")
    ] = None,
    sessions: Annotated[int | None, typer.Option(help="number of viewers")] = None,
    sessions_per_memory: Annotated[float | None, typer.Option(help="viewers per memory")] = None,
    arrival_rate: Annotated[float | None, typer.Option(help="arrivals per second")] = None,
    persistence: Annotated[
        float | None, typer.Option(help="P(repeat the previous action), 0..1")
    ] = None,
    turn_bias: Annotated[float | None, typer.Option(help="share of camera turns, 0..1")] = None,
    think_mean: Annotated[float | None, typer.Option(help="mean think time, seconds")] = None,
    think_cv: Annotated[float | None, typer.Option(help="think time variation (lognormal CV)")] = (
        None
    ),
    seed: Annotated[int | None, typer.Option(help="seed")] = None,
    viewer: Annotated[
        str | None,
        typer.Option(
            help="viewer model: persistent, or human (mostly w, turns ~12.5% each "
            "side, think 0.5-2 s)"
        ),
    ] = None,
) -> None:
    """Write a synthetic trace with documented knobs (orchestrator.sim.synth)."""
    from orchestrator.sim.run import synth_traces

    try:
        n = synth_traces(
            out,
            regime=regime,
            sessions=sessions,
            sessions_per_memory=sessions_per_memory,
            arrival_rate_per_s=arrival_rate,
            persistence=persistence,
            turn_bias=turn_bias,
            think_mean_s=think_mean,
            think_cv=think_cv,
            seed=seed,
            viewer=viewer,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{n} sessions written to {out}")


@traces_app.command()
def export(
    out: Annotated[Path, typer.Option(help="trace file to write")] = Path("trace.jsonl"),
    since: Annotated[str | None, typer.Option(help="ISO-8601 start (inclusive)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO-8601 end (exclusive)")] = None,
) -> None:
    """Write real traffic (chunk request rows) in the trace format, to replay it."""
    from orchestrator.backends import profile_from
    from orchestrator.config import load_settings
    from orchestrator.db import open_database
    from orchestrator.sim.export import export_sessions
    from orchestrator.sim.trace import write_trace

    try:
        t0, t1 = parse_time(since, "since"), parse_time(until, "until")
    except ApiError as exc:
        raise typer.BadParameter(exc.detail) from exc
    settings = load_settings()
    duration = profile_from(settings).duration_s

    async def go() -> int:
        db = await open_database(settings.database.url, settings.server.data_dir)
        try:
            async with db.pool.acquire() as conn:
                sessions = await export_sessions(conn, t0, t1, duration)
        finally:
            await db.close()
        meta = {
            "source": "rewind traces export",
            "since": since,
            "until": until,
            "chunk_duration_s": duration,
        }
        return write_trace(out, sessions, meta)

    n = asyncio.run(go())
    typer.echo(f"{n} sessions written to {out}")
