"""A bare FastAPI app: the floor for ``benchmarks/hits.py`` (what a cache hit could cost at best).

One route, ``POST /api/memories/{memory_id}/chunks``, with the service's own request and response
models (``orchestrator.schemas.ChunkRequest`` in, ``ChunkCreated`` out, the same ``inline`` query
parameter), answering every request with a fixture: one real hit response captured from the
service, with the request's ``session_id`` put in. No middleware, no state, no database. Served by
the same uvicorn call as ``rewind serve`` (``uvicorn.run(app, host, port, log_config=None,
**uvicorn_options(settings))`` when orchestrator/http_server.py exists, so the same loop, HTTP
protocol class and keep-alive: uvloop and httptools when installed).

Usage: ``REWIND_BARE_FIXTURE=hit.json python benchmarks/bare_app.py --port 8001``
(the fixture: a file holding one ``ChunkCreated`` JSON document). ``--middleware`` adds a copy of
the service's ``request_context`` middleware (``@app.middleware("http")``, i.e. Starlette's
BaseHTTPMiddleware: request id, structlog context vars, body-size check, one log call) with the
service's logging set-up at level warning, to measure what that layer alone costs.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from orchestrator.logs import configure_logging
from orchestrator.schemas import ChunkCreated, ChunkRequest

log = structlog.get_logger("bare_app")
MAX_BODY = 20 * 1024 * 1024


def create_app(fixture: dict[str, object], middleware: bool = False) -> FastAPI:
    """The one-route app answering ``fixture`` (a ChunkCreated document) to every request."""
    app = FastAPI()
    template = ChunkCreated.model_validate(fixture)

    if middleware:  # the same body as orchestrator/app.py's request_context

        @app.middleware("http")
        async def request_context(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(
                request_id=request_id, method=request.method, path=request.url.path
            )
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > MAX_BODY:
                response: Response = JSONResponse({"error": "too_large"}, status_code=413)
            else:
                response = await call_next(request)
            response.headers["x-request-id"] = request_id
            log.info("request", status=response.status_code)
            return response

    @app.post("/api/memories/{memory_id}/chunks", response_model=ChunkCreated)
    async def post_chunk(
        memory_id: uuid.UUID, body: ChunkRequest, inline: bool = True
    ) -> ChunkCreated:
        return template.model_copy(update={"session_id": body.session_id})

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--middleware", action="store_true", help="add request_context's copy")
    args = parser.parse_args()
    configure_logging("warning", True)  # as rewind serve with REWIND_LOG__LEVEL=warning
    fixture = json.loads(Path(os.environ["REWIND_BARE_FIXTURE"]).read_text())
    app = create_app(fixture, middleware=args.middleware)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, **_serve_options())


def _serve_options() -> dict[str, Any]:
    """The extra ``uvicorn.run`` options ``rewind serve`` passes (orchestrator/cli.py), if any:
    ``orchestrator.http_server.uvicorn_options`` (its guarded protocol class, keep-alive, ...)
    from the same settings (defaults, ./rewind.toml, REWIND_* environment)."""
    try:
        from orchestrator.http_server import uvicorn_options
    except ImportError:  # a tree from before [http]: serve passes no extra options
        return {}
    from orchestrator.config import load_settings

    opts: dict[str, Any] = uvicorn_options(load_settings())
    return opts


if __name__ == "__main__":
    main()
