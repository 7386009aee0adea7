"""``orchestrator.api_fast.LeanRoute`` answers every request as FastAPI's own handler does: the
same endpoint registered both ways, the same requests sent to both, the answers compared."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from orchestrator.api_fast import LeanRoute
from orchestrator.config import AuthConfig
from orchestrator.gate import Gate, User
from orchestrator.schemas import ChunkRequest

Inline = Annotated[bool, Query(description="include the video")]


async def echo(
    memory_id: uuid.UUID, body: ChunkRequest, caller: User, request: Request, inline: Inline = True
) -> Response:
    """What the endpoint was given, as JSON."""
    return JSONResponse(
        {
            "memory_id": str(memory_id),
            "body": body.model_dump(mode="json"),
            "body_types": {k: type(v).__name__ for k, v in body},
            "caller": str(getattr(caller, "user_id", None)),
            "inline": inline,
            "path": request.url.path.split("/")[1],
        }
    )


def _app() -> tuple[FastAPI, LeanRoute]:
    app = FastAPI()
    app.state.service = SimpleNamespace(gate=Gate(AuthConfig()))  # the caller: auth off
    router = APIRouter()
    router.add_api_route("/standard/{memory_id}/chunks", echo, methods=["POST"])
    router.add_api_route("/lean/{memory_id}/chunks", echo, methods=["POST"],
                         route_class_override=LeanRoute)  # fmt: skip
    app.include_router(router)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        # Every field of every error; ASCII-escaped: an input may hold a lone surrogate.
        text = json.dumps({"detail": exc.errors()}, default=repr, ensure_ascii=True)
        return Response(text, status_code=422, media_type="application/json")

    lean = next(r for r in router.routes if isinstance(r, LeanRoute))
    return app, lean


MID, PARENT, SID = (str(uuid.uuid4()) for _ in range(3))
GOOD: dict[str, Any] = {"parent_chunk_id": PARENT, "action": "w", "session_id": SID}
JSON_CT = {"content-type": "application/json"}

# (query string, headers, body bytes, path memory id): what a client may send.
ACCEPTED = [
    ("inline=false", JSON_CT, json.dumps(GOOD).encode(), MID),
    ("", JSON_CT, json.dumps(GOOD).encode(), MID),
    ("inline=1&inline=0", JSON_CT, json.dumps(GOOD).encode(), MID),
    ("inline=true", {"content-type": "Application/JSON; charset=utf-8"},
     json.dumps({"parent_chunk_id": PARENT, "pose": "w-31"}).encode(), MID.upper()),
    ("", JSON_CT, json.dumps({**GOOD, "action": "e\u0301"}).encode(), MID.replace("-", "")),
    ("", JSON_CT, b'{"parent_chunk_id": "%s", "action": "w", "action": "a"}' % PARENT.encode(),
     MID),
    ("", JSON_CT, json.dumps({**GOOD, "session_id": None}).encode(), "{" + MID + "}"),
]  # fmt: skip
LEFT_TO_FASTAPI = [
    ("inline=yes", JSON_CT, json.dumps(GOOD).encode(), MID),  # accepted, by FastAPI's handler
    ("inline=maybe", JSON_CT, json.dumps(GOOD).encode(), MID),
    ("", JSON_CT, json.dumps(GOOD).encode(), "not-a-uuid"),
    ("", JSON_CT, b"", MID),
    ("", JSON_CT, b"{", MID),
    ("", JSON_CT, b"[]", MID),
    ("", JSON_CT, json.dumps({**GOOD, "extra": 1}).encode(), MID),
    ("", JSON_CT, json.dumps({**GOOD, "action": 3}).encode(), MID),
    ("", JSON_CT, json.dumps({**GOOD, "parent_chunk_id": "x"}).encode(), MID),
    ("", JSON_CT, b'{"parent_chunk_id": "%s", "action": "\\ud800"}' % PARENT.encode(), MID),
    ("", JSON_CT, json.dumps({**GOOD, "action": "a\x00"}).encode(), MID),
    ("", JSON_CT, json.dumps(GOOD).encode("utf-16"), MID),
    ("", {"content-type": "text/plain"}, json.dumps(GOOD).encode(), MID),
    ("", {"content-type": "application/merge-patch+json"}, json.dumps(GOOD).encode(), MID),
    ("", {}, json.dumps(GOOD).encode(), MID),
]


def _send(client: TestClient, kind: str, case: tuple[str, dict[str, str], bytes, str]) -> Any:
    query, headers, body, mid = case
    url = f"/{kind}/{mid}/chunks" + (f"?{query}" if query else "")
    r = client.post(url, content=body, headers=headers)
    try:
        payload = r.json()
    except ValueError:
        payload = r.text
    if isinstance(payload, dict):
        payload.pop("path", None)
    return r.status_code, payload


@pytest.mark.parametrize("case", ACCEPTED + LEFT_TO_FASTAPI)
def test_the_lean_route_answers_as_fastapis_handler(
    case: tuple[str, dict[str, str], bytes, str],
) -> None:
    app, lean = _app()
    with TestClient(app) as client:
        assert _send(client, "lean", case) == _send(client, "standard", case)
    assert (lean.lean, lean.standard) == ((1, 0) if case in ACCEPTED else (0, 1))


def test_a_dependency_override_is_left_to_fastapi() -> None:
    from orchestrator.gate import current_user

    app, lean = _app()

    async def nobody() -> None:
        return None

    app.dependency_overrides[current_user] = nobody
    with TestClient(app) as client:
        answer = _send(client, "lean", ACCEPTED[0])
    assert answer[0] == 200 and answer[1]["caller"] == "None"
    assert (lean.lean, lean.standard) == (0, 1)


def test_an_unsupported_route_shape_is_refused_when_built() -> None:
    async def with_header(memory_id: uuid.UUID, body: ChunkRequest, x: str = Query()) -> None:
        return None

    router = APIRouter()
    with pytest.raises(TypeError, match="query parameters must be bool"):
        router.add_api_route("/{memory_id}", with_header, methods=["POST"],
                             route_class_override=LeanRoute)  # fmt: skip
