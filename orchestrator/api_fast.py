"""A lean request handler for the cache-hit route (issue 10), with FastAPI's own as the fallback.

FastAPI's per-request handler reads the body, ``json.loads`` it, then solves the route's
dependencies and validates every parameter through its generic machinery: ~16 % of a cache
hit's CPU at 500 sessions (benchmarks/hits.py under py-spy), as much as the route's own work.
``LeanRoute`` is an ``APIRoute`` whose handler does the same for the one shape of route it
accepts, resolved once when the route is built instead of on every request:

- path parameters typed ``uuid.UUID`` (validated by pydantic's own UUID validator, as FastAPI
  does, and remembered for the few ids a hit repeats);
- optional ``bool`` query parameters (pydantic's bool validator, as FastAPI's);
- one pydantic model as the JSON body, validated by pydantic straight from the bytes
  (``model_validate_json``), when the request says ``Content-Type: application/json``;
- the caller (``orchestrator.gate.current_user``, rate limit included) and the ``Request``.

Anything else about a request (a body that does not validate, another content type, a query
parameter that is not a plain ``true``/``false``, a dependency override, OpenTelemetry data being
recorded) is handed to FastAPI's own handler for the route, unchanged: every 4xx keeps FastAPI's
answer, shape and message, byte for byte. When both would accept a request they pass the endpoint
the same values: pydantic's JSON and Python modes agree on the strings and UUIDs these models hold
(the unit tests compare the two handlers request by request).

A route of another shape is refused when it is built (``TypeError``), so a new parameter cannot be
silently ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.responses import Response

from orchestrator.gate import current_user

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_UUID = TypeAdapter(uuid.UUID)
_BOOL = TypeAdapter(bool)
_CACHE_MAX = 4096  # path ids and query strings remembered (emptied when full: bounded)


class _Shape:
    """What a ``LeanRoute`` endpoint takes, checked once (``TypeError`` when unsupported)."""

    def __init__(self, route: APIRoute) -> None:
        dep = route.dependant
        if dep.header_params or dep.cookie_params or route._embed_body_fields:
            raise TypeError(f"{route.path}: LeanRoute takes no header/cookie/embedded params")
        if (dep.response_param_name or dep.background_tasks_param_name
                or dep.websocket_param_name or dep.http_connection_param_name
                or dep.security_scopes_param_name):  # fmt: skip
            raise TypeError(f"{route.path}: LeanRoute passes only the Request")
        self.request = dep.request_param_name
        self.path = [f.name for f in dep.path_params]
        if any(f.field_info.annotation is not uuid.UUID for f in dep.path_params):
            raise TypeError(f"{route.path}: LeanRoute path parameters must be uuid.UUID")
        self.flags: dict[str, bool] = {}
        for f in dep.query_params:
            if f.field_info.annotation is not bool or not isinstance(f.field_info.default, bool):
                raise TypeError(f"{route.path}: LeanRoute query parameters must be bool = default")
            if f.field_info.alias not in (None, f.name):
                raise TypeError(f"{route.path}: LeanRoute query parameters take no alias")
            self.flags[f.name] = f.field_info.default
        if len(dep.body_params) != 1:
            raise TypeError(f"{route.path}: LeanRoute needs exactly one JSON body model")
        body = dep.body_params[0]
        model = body.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{route.path}: LeanRoute's body must be a pydantic model")
        self.body_name, self.model = body.name, model
        callers = [d for d in dep.dependencies if d.call is current_user]
        if len(callers) != len(dep.dependencies) or len(callers) > 1:
            raise TypeError(f"{route.path}: LeanRoute's only dependency may be the caller")
        self.caller = callers[0].name if callers else None
        self._ids: dict[str, uuid.UUID] = {}
        self._queries: dict[bytes, dict[str, bool] | None] = {}

    def ids(self, params: dict[str, Any]) -> dict[str, uuid.UUID] | None:
        """The path parameters as UUIDs (pydantic's validator), None if one does not parse."""
        out: dict[str, uuid.UUID] = {}
        cache = self._ids
        for name in self.path:
            text = params.get(name)
            if not isinstance(text, str):
                return None
            value = cache.get(text)
            if value is None:
                try:
                    value = _UUID.validate_python(text)
                except ValidationError:
                    return None
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[text] = value
            out[name] = value
        return out

    def query(self, raw: bytes) -> dict[str, bool] | None:
        """The bool query parameters of query string ``raw`` (defaults for absent ones), None
        when one is not plainly ``true``/``false``/``1``/``0`` (FastAPI's handler decides)."""
        cache = self._queries
        if raw in cache:
            return cache[raw]
        params = QueryParams(raw)  # FastAPI's parse: the last value of a repeated name
        flags: dict[str, bool] | None = dict(self.flags)
        for name in self.flags:
            value = params.get(name)
            if value is None:
                continue
            if value not in ("true", "false", "1", "0"):
                flags = None
                break
            assert flags is not None
            flags[name] = _BOOL.validate_python(value)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[raw] = flags
        return flags


def _json_request(request: Request) -> bool:
    """The request declares plain ``application/json`` (what FastAPI parses as JSON too)."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":  # Headers.get: the first one
            media: bytes = value.split(b";")[0].strip().lower()
            return media == b"application/json"
    return False


class LeanRoute(APIRoute):
    """An ``APIRoute`` answering well-formed requests through the lean handler (module doc);
    OpenAPI, matching and the exception handlers are the plain route's.

    Attributes:
        lean: requests the lean handler took; ``standard``: those left to FastAPI's.
    """

    lean = 0
    standard = 0

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        shape = _Shape(self)
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            kwargs: dict[str, Any] | None = await _parse(shape, request)
            if kwargs is None:
                self.standard += 1
                return await standard(request)  # the body read is cached on the request
            self.lean += 1
            if shape.caller is not None:
                kwargs[shape.caller] = await current_user(request)
            response: Response = await endpoint(**kwargs)
            return response

        return handler


async def _parse(shape: _Shape, request: Request) -> dict[str, Any] | None:
    """The endpoint's arguments but the caller, or None: FastAPI's handler must decide."""
    if request.app.dependency_overrides or get_telemetry_data() is not None:
        return None
    scope = request.scope
    kwargs: dict[str, Any] | None = shape.ids(scope["path_params"])
    flags = shape.query(scope["query_string"])
    if kwargs is None or flags is None or not _json_request(request):
        return None
    body = await request.body()
    try:
        kwargs[shape.body_name] = shape.model.model_validate_json(body)
    except ValidationError:
        return None
    kwargs.update(flags)
    if shape.request is not None:
        kwargs[shape.request] = request
    return kwargs
