"""``rewind analytics``: the analytics views from the command line (table, CSV or JSON)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from orchestrator import analytics
from orchestrator.config import load_settings
from orchestrator.db import open_database
from orchestrator.errors import ApiError
from orchestrator.queries import Conn
from orchestrator.tables import Format, render_rows

app = typer.Typer(help="Hit rates, waits and waste from the analytics views.")

GroupByOpt = Annotated[
    str, typer.Option("--group-by", help="comma-separated: policy, arm, day, depth, action")
]
SinceOpt = Annotated[str | None, typer.Option(help="ISO-8601 start (inclusive)")]
UntilOpt = Annotated[str | None, typer.Option(help="ISO-8601 end (exclusive)")]
FormatOpt = Annotated[str, typer.Option("--format", help="table | csv | json")]

Query = Callable[[Conn, list[str], Any, Any], Awaitable[dict[str, Any]]]


def _run(
    query: Query, group_by: str, since: str | None, until: str | None, allowed: tuple[str, ...]
) -> dict[str, Any]:
    try:
        dims = analytics.parse_group_by(group_by, allowed)
        t0, t1 = analytics.parse_time(since, "since"), analytics.parse_time(until, "until")
    except ApiError as exc:
        raise typer.BadParameter(exc.detail, param_hint=f"--{exc.field}") from exc
    settings = load_settings()

    async def go() -> dict[str, Any]:
        db = await open_database(settings.database.url, settings.server.data_dir)
        try:
            async with db.pool.acquire() as conn:
                return await query(conn, dims, t0, t1)
        finally:
            await db.close()

    return asyncio.run(go())


def _fmt(value: str) -> Format:
    if value not in ("table", "csv", "json"):
        raise typer.BadParameter("choose table, csv or json", param_hint="--format")
    return value  # type: ignore[return-value]


@app.command("hit-rates")
def hit_rates(
    group_by: GroupByOpt = "policy",
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Request hit / in-flight / miss rates, then branch hit rates."""
    out = _fmt(fmt)
    result = _run(analytics.hit_rates, group_by, since, until, analytics.DIMENSIONS)
    if out == "json":
        typer.echo(render_rows([result], "json"))
        return
    typer.echo(render_rows(result["request_rates"], out, "request hit rates"))
    typer.echo("")
    typer.echo(render_rows(result["branch_rates"], out, "branch hit rates (speculative jobs)"))


@app.command()
def waits(
    group_by: GroupByOpt = "policy",
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Wait mean and p50 / p95 / p99 in milliseconds."""
    result = _run(analytics.waits, group_by, since, until, analytics.DIMENSIONS)
    typer.echo(render_rows(result["rows"], _fmt(fmt), "waits (ms)"))


@app.command()
def waste(
    group_by: GroupByOpt = "policy",
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Waste ratio, GPU-seconds and USD in total and per served chunk."""
    result = _run(analytics.waste, group_by, since, until, analytics.WASTE_DIMENSIONS)
    typer.echo(render_rows(result["rows"], _fmt(fmt), "waste and cost"))
