"""The OpenAPI document as a frontend developer reads it at ``/docs`` and ``/redoc``.

The pages' assets (Swagger UI, ReDoc) are served by the service itself from the
``fastapi-offline`` package, so the docs work without internet (``create_app`` builds the app
with ``fastapi_offline.FastAPIOffline``). ``install_openapi`` post-processes FastAPI's generated
schema, so routes stay plain and new routes are covered by the same rules:

- every operation gets a tag for its area (``TAGS``, by path) and a readable ``operationId`` and
  summary (the function name and the first line of its docstring);
- every error answer is documented with the real body, ``ErrorBody`` (``{error, detail, field}``
  and the extra keys some errors add), instead of FastAPI's ``HTTPValidationError``: 422 on every
  route that takes parameters or a body, 404 on every route with an id in its path, 413 on every
  route with a body, and the route-specific ones in ``EXTRA_ERRORS`` (409, 500, 502).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

TAGS: tuple[tuple[str, str, str], ...] = (
    # (path prefix, tag, description); the first matching prefix wins.
    ("/api/memories/{memory_id}/chunks", "chunks", "Walk: the next chunk from a parent chunk."),
    ("/api/memories/{memory_id}/share", "auth", "The caller, read-only sharing of a memory."),
    ("/api/memories/{memory_id}/events", "events", "Server-sent events of a memory."),
    ("/api/memories/{memory_id}/sessions", "sessions", "Viewers' walks through a memory."),
    ("/api/memories/{memory_id}/image", "media", "Photos, chunk videos, frames, audio."),
    ("/api/memories/{memory_id}/audio", "media", "Photos, chunk videos, frames, audio."),
    ("/api/memories", "memories", "A photo in, a memory out: its root chunk, scene, audio."),
    ("/api/chunks", "media", "Photos, chunk videos, frames, audio."),
    ("/api/sessions", "sessions", "Viewers' walks through a memory."),
    ("/api/analytics", "analytics", "Hit rates, waits, waste and cost."),
    ("/api/admin", "admin", "The active configuration, live reload."),
    ("/api/health", "health", "Database, storage, GPU pool and backends."),
    ("/api/me", "auth", "The caller, read-only sharing of a memory."),
    ("/metrics", "metrics", "Prometheus metrics."),
)

_STATUS_TEXT = {
    401: "Missing or wrong credentials.",
    403: "Valid credentials without the operator role, or a cross-site request.",
    429: "Over a per-user limit; `Retry-After` says when to try again.",
    503: "The database is unavailable (being restarted or reconnected); see `Retry-After`.",
    404: "An id names nothing (or nothing this caller may see); `field` names it.",
    409: "Valid, but the state does not allow it yet (e.g. the parent chunk is not ready).",
    413: "The body or the photo is too large (bytes or pixels).",
    422: "A rule was broken (bad base64, not an image, bad pose or action, bad parameter); "
    "`field` names the field, `detail` the rule.",
    500: "The server failed (e.g. ffmpeg could not stitch the journey); details are logged.",
    502: "The GPU could not produce the chunk; `job_id` names the last attempt.",
}

EXTRA_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/memories"): (502,),
    ("post", "/api/memories/{memory_id}/chunks"): (409, 502),
    ("get", "/api/sessions/{session_id}/journey.mp4"): (409, 500),
    ("post", "/api/admin/config/reload"): (422,),
}
"""Errors beyond the rules of the module docstring, per (method, path)."""


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, in words a frontend developer can act on."""

    error: str = Field(description="machine-readable code", examples=["invalid_pose"])
    detail: str = Field(
        description="one sentence: the rule broken and how to fix the request",
        examples=["steps must sum to 31 for 125 frames (got 30)"],
    )
    field: str | None = Field(
        None, description="the request field at fault, if any", examples=["pose"]
    )
    job_id: str | None = Field(None, description="502 generation_failed: the last attempt")
    chunk_id: str | None = Field(None, description="502 generation_failed: the chunk")
    errors: list[dict[str, Any]] | None = Field(
        None, description="422 invalid_config: every problem, as {loc, msg}"
    )


def tag_for(path: str) -> tuple[str, str] | None:
    """(tag, description) of the area ``path`` belongs to, or None."""
    for prefix, tag, description in TAGS:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "."):
            return tag, description
    return None


def error_codes(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses ``operation`` (``method`` ``path``) can answer, ascending."""
    codes = set(EXTRA_ERRORS.get((method, path), ()))
    if operation.get("parameters") or "requestBody" in operation:
        codes.add(422)
    if "{" in path:
        codes.add(404)
    if "requestBody" in operation:
        codes.add(413)
    for status in operation.get("responses", {}):
        if status.isdigit() and int(status) >= 400:
            codes.add(int(status))
    return sorted(codes)


def readable_id(operation_id: str, method: str, path: str) -> str:
    """FastAPI's generated id (``<function><path>_<method>`` with non-word characters as ``_``)
    cut back to the function name: ``post_chunk_api_memories__memory_id__chunks_post`` ->
    ``post_chunk``."""
    suffix = re.sub(r"\W", "_", path) + "_" + method
    return operation_id.removesuffix(suffix) or operation_id


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's OpenAPI dict) with tags, operation ids, summaries and error
    models. In place; also returned."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    used: dict[str, str] = {}
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            found = tag_for(path)
            if found is not None:
                operation["tags"] = [found[0]]
                used[found[0]] = found[1]
            if "operationId" in operation:
                operation["operationId"] = readable_id(operation["operationId"], method, path)
            lines = str(operation.get("description", "")).strip().splitlines()
            if lines:  # the docstring's first line says what it does; the name only repeats it
                operation["summary"] = lines[0].rstrip(".")
            responses = operation.setdefault("responses", {})
            for code in error_codes(method, path, operation):
                responses[str(code)] = {
                    "description": _STATUS_TEXT.get(code, "Error."),
                    "content": {"application/json": {"schema": ref}},
                }
    schema["tags"] = [
        {"name": tag, "description": description} for tag, description in used.items()
    ]
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the documented schema (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document(schema)
        return app.openapi_schema

    setter: Callable[[], dict[str, Any]] = openapi
    app.openapi = setter  # type: ignore[method-assign]
