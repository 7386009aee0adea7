"""What the API answers when a part fails: JSON always, 503 + Retry-After for the database.

Without these handlers an asyncpg error escaping a route became Starlette's plain-text
"Internal Server Error" (issue 12: every endpoint, during an embedded PostgreSQL outage). Now:

- a database error (``db_supervisor.is_database_error``; an ambiguous one, such as a bare
  OSError, only when a probe of the database fails too) is a 503 ``database_unavailable``
  with ``Retry-After``, and wakes the supervisor so the outage is noticed at once;
- anything else unexpected is a 500 ``internal_error`` whose detail names the request id to
  quote, never the exception text (it may hold server paths or SQL).

``ready_on_disk`` lets media routes keep serving ready chunks while the database is down.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse

from orchestrator.db_supervisor import DB_ERRORS, is_database_error, outage_error
from orchestrator.errors import DatabaseUnavailable
from orchestrator.redact import redact_paths

if TYPE_CHECKING:
    from orchestrator.service import Service

log = structlog.get_logger(__name__)


def _service(request: Request) -> Service | None:
    svc: Service | None = getattr(request.app.state, "service", None)
    return svc


async def database_unavailable(
    svc: Service | None, exc: BaseException
) -> DatabaseUnavailable | None:
    """The 503 to answer for ``exc``, or None when the database is fine (another fault).

    An ambiguous error (``db_supervisor.AMBIGUOUS``: OSError, asyncpg's interface errors) is
    the database's only when a fresh probe fails as well: storage and ffmpeg raise OSError too.
    """
    return await outage_error(svc.db.supervisor if svc is not None else None, exc)


def _json(status: int, error: str, detail: str, headers: dict[str, str] | None) -> JSONResponse:
    return JSONResponse(
        {"error": error, "detail": redact_paths(detail), "field": None},
        status_code=status,
        headers=headers,
    )


def install_fault_handlers(app: Any) -> None:
    """Register the database and catch-all handlers on a FastAPI ``app``."""

    async def on_db_error(request: Request, exc: Exception) -> JSONResponse:
        if is_database_error(exc):
            unavailable = await database_unavailable(_service(request), exc)
            if unavailable is not None:
                return _json(
                    503,
                    unavailable.error,
                    unavailable.detail,
                    {"retry-after": str(unavailable.retry_after_s)},
                )
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = structlog.contextvars.get_contextvars().get("request_id") or uuid.uuid4().hex
        log.error("unexpected_error", error=type(exc).__name__, exc_info=exc)
        return _json(
            500,
            "internal_error",
            f"the service failed unexpectedly ({type(exc).__name__}); quote request id {ref}",
            None,
        )

    for cls in DB_ERRORS:
        app.add_exception_handler(cls, on_db_error)
    app.add_exception_handler(Exception, on_unexpected)


def ready_on_disk(svc: Service, chunk_id: uuid.UUID) -> dict[str, Any] | None:
    """A chunks-row stand-in for a ready chunk whose MP4 and last frame are on local disk.

    Used only while the database is unavailable. Safe because the job runner writes both files
    (atomically, fsynced) before it marks a chunk ready, keys are made from ids (never from a
    request), and the embedded default has no per-user access rules to check. Remote stores
    answer None (their URLs need the database's key). Cost: one directory listing per memory.
    """
    root = getattr(svc.store, "root", None)
    if not isinstance(root, Path):
        return None
    name = f"{chunk_id}.mp4"
    for video in (root / "videos").glob(f"*/{name}"):
        memory = video.parent.name
        frame = root / "frames" / memory / f"{chunk_id}.png"
        if frame.exists():
            return {
                "id": chunk_id,
                "status": "ready",
                "video_path": f"{memory}/{name}",
                "last_frame_path": f"{memory}/{chunk_id}.png",
            }
    return None
