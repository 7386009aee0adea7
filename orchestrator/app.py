"""The FastAPI application: lifespan, request ids, body-size limit, and JSON errors.

Every error a client can cause is answered as ``{"error", "detail", "field"}`` with a 4xx status,
including FastAPI's own validation errors (reshaped so a frontend developer sees which field
broke which rule).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.access_log import AccessLog
from orchestrator.api import router
from orchestrator.api_admin import router as admin_router
from orchestrator.api_docs import install_openapi
from orchestrator.api_events import router as events_router
from orchestrator.api_sessions import router as sessions_router
from orchestrator.api_timeseries import router as timeseries_router
from orchestrator.api_web import router as web_router
from orchestrator.config import Settings
from orchestrator.errors import ApiError
from orchestrator.service import Service

log = structlog.get_logger(__name__)

# JSON overhead above the largest accepted photo: base64 inflates by 4/3, plus the prompt.
_BODY_SLACK = 64 * 1024


def create_app(
    settings: Settings, service: Service | None = None, config_path: Path | None = None
) -> FastAPI:
    """The ASGI app. It starts (and stops) its own Service unless one is passed in.

    ``config_path`` is the file a reload (POST /api/admin/config/reload, or SIGHUP) re-reads.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None
        svc = service or await Service.start(settings, config_path)
        app.state.service = svc
        _install_sighup(svc)
        try:
            yield
        finally:
            if owned:
                await svc.close()

    # FastAPIOffline: /docs and /redoc with Swagger UI and ReDoc served from the package, no CDN.
    app = FastAPIOffline(
        title="Rewind orchestrator",
        version=_version(),
        description="Speculative branch-prefetching orchestrator: a photo in, a walkable video "
        "world out, one chunk at a time. Errors are JSON `{error, detail, field}`.",
        lifespan=lifespan,
    )
    install_openapi(app)
    if service is not None:
        app.state.service = service
    app.include_router(router)
    app.include_router(events_router)
    app.include_router(sessions_router)
    app.include_router(timeseries_router)
    app.include_router(admin_router)
    app.include_router(web_router)
    max_body = settings.limits.max_image_bytes * 4 // 3 + _BODY_SLACK

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            err = ApiError(
                413,
                "too_large",
                f"request body is {length} bytes; the limit is {max_body} bytes "
                f"(photos up to {settings.limits.max_image_bytes} bytes before base64)",
            )
            response: Response = JSONResponse(err.to_json(), status_code=413)
        else:
            response = await call_next(request)
        return response

    # Outermost: request ids, one access line per request with its duration (access_log.py).
    app.add_middleware(AccessLog)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request_failed", error=exc.error, detail=exc.detail)
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in errors
        )
        return JSONResponse(
            {"error": "invalid_request", "detail": detail, "field": field}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return JSONResponse(
            {"error": code, "detail": str(exc.detail), "field": None},
            status_code=exc.status_code,
        )

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rewind-orchestrator")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def _install_sighup(svc: Service) -> None:
    """SIGHUP re-reads the configuration, as POST /api/admin/config/reload does."""

    async def reload() -> None:
        try:
            result = await svc.reload()
            log.info("sighup_reload", restart_required=result["restart_required"])
        except ApiError as exc:
            log.error("sighup_reload_refused", detail=exc.detail)

    def on_hup() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        _background.add(task)
        task.add_done_callback(_background.discard)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError, ValueError):
        log.info("sighup_unavailable")  # not the main thread, or no signals on this platform


_background: set[asyncio.Task[None]] = set()
