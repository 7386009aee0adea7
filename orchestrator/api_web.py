"""The service's own web pages (player at ``/``, dashboard at ``/dashboard``) and journey replay.

The pages are plain HTML, CSS and JavaScript files in ``orchestrator/web/``, served as they are:
no build step, no CDN, nothing fetched from outside the service. ``GET /static/{name}`` serves
only the files listed in ``_STATIC``.

``GET /api/sessions/{session_id}/journey.mp4`` stitches the session's chunk path into one MP4
(see ``orchestrator.journey``) in a temporary folder that is removed once the response is sent.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from orchestrator.api import Svc
from orchestrator.errors import NotFound
from orchestrator.gate import User
from orchestrator.journey import load_journey, stitch_journey

WEB_DIR = Path(__file__).resolve().parent / "web"

_STATIC: dict[str, str] = {
    "auth.js": "text/javascript; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
    "playback.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "timeseries.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Revalidate every time (FileResponse sends an ETag), so a new release is never half-cached.
_NO_CACHE = {"cache-control": "no-cache"}

router = APIRouter()


def _page(name: str, media_type: str) -> FileResponse:
    return FileResponse(WEB_DIR / name, media_type=media_type, headers=_NO_CACHE)


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def player_page() -> Response:
    """The player: upload a photo, watch and steer the chunks."""
    return _page("index.html", "text/html; charset=utf-8")


@router.get("/dashboard", response_class=FileResponse, include_in_schema=False)
async def dashboard_page() -> Response:
    """The operators' and analysts' dashboard: hit rates, waits, waste, GPU slots, config."""
    return _page("dashboard.html", "text/html; charset=utf-8")


@router.get("/static/{name}", response_class=FileResponse, include_in_schema=False)
async def static_file(name: str) -> Response:
    """One of the pages' scripts or stylesheet."""
    media_type = _STATIC.get(name)
    if media_type is None:
        raise NotFound(f"no static file {name!r}", field="name")
    return _page(name, media_type)


@router.get(
    "/api/sessions/{session_id}/journey.mp4",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "the journey as one MP4"},
        404: {"description": "unknown session"},
        409: {"description": "the session's path has no ready chunk yet"},
    },
)
async def journey_mp4(session_id: uuid.UUID, svc: Svc, caller: User) -> Response:
    """The session's walk as one MP4: its chunks in path order, with the soundscape if any.

    Only the session's owner (or an operator) gets it; anyone else gets the unknown-id 404.
    """
    await svc.scheduler.writer.flush()  # the latest cursor moves may still be written behind
    async with svc.db.pool.acquire() as conn:
        await svc.gate.ownership.own_session(conn, caller, session_id)
        journey = await load_journey(conn, session_id)
    workdir = Path(tempfile.mkdtemp(prefix="rewind-journey-"))
    try:
        out = await stitch_journey(svc.store, journey, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return FileResponse(
        out,
        media_type="video/mp4",
        filename=f"rewind-journey-{session_id}.mp4",
        background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
    )
