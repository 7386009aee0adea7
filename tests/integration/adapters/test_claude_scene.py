"""ClaudeSceneAnalyzer through the real anthropic client against a local Messages API stand-in."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

from orchestrator.claude_scene import (
    ClaudeSceneAnalyzer,
    SceneAnalysisError,
    SceneConfigError,
    check_config,
)
from orchestrator.scene import SceneInfo
from tests.conftest import photo_png

KEY = "sk-ant-test-SECRET-0123456789"
SCENE = {
    "description": "An astronaut in a white suit in front of a flag.",
    "mood": "proud, calm",
    "anchor_points": [
        {"label": "helmet", "x": 0.45, "y": 0.3},
        {"label": "flag", "x": 0.8, "y": 0.2},
    ],
    "sound_keywords": ["radio chatter", "breathing"],
}


def anthropic_app(scenario: dict[str, Any], seen: list[dict[str, Any]]) -> FastAPI:
    """POST /v1/messages as Anthropic answers it; ``scenario["status"]`` picks the outcome."""
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request) -> JSONResponse:
        seen.append({"headers": dict(request.headers), "body": await request.json()})
        status = scenario["status"]
        if status != 200:
            kind = {401: "authentication_error", 429: "rate_limit_error"}.get(status, "api_error")
            error = {"type": "error", "error": {"type": kind, "message": f"stand-in {status}"}}
            return JSONResponse(error, status_code=status, headers={"retry-after-ms": "10"})
        text = scenario.get("text", json.dumps(SCENE))
        return JSONResponse({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1500, "output_tokens": 120},
        })  # fmt: skip

    return app


def analyzer(url: str, **kwargs: Any) -> ClaudeSceneAnalyzer:
    return ClaudeSceneAnalyzer(KEY, base_url=url, timeout_s=10, max_retries=0, **kwargs)


async def test_structured_scene_over_http(serve: Any) -> None:
    seen: list[dict[str, Any]] = []
    claude = analyzer(serve(anthropic_app({"status": 200}, seen)))
    big = photo_png("astronaut", size=(1700, 1600))
    scene = await claude.analyze(big, "  my first   day at NASA ")
    assert scene == SceneInfo.model_validate(SCENE)
    body, headers = seen[0]["body"], seen[0]["headers"]
    # anthropic 2.12 sends the key as a bearer token (older SDKs used x-api-key).
    assert KEY in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert body["model"] == "claude-haiku-4-5"
    # Structured output: SceneInfo's JSON schema travels as output_config.format.
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    assert set(fmt["schema"]["required"]) == set(SCENE)
    image, text = body["messages"][0]["content"]
    assert image["source"]["type"] == "base64" and image["source"]["media_type"] == "image/jpeg"
    sent = Image.open(io.BytesIO(base64.b64decode(image["source"]["data"])))
    assert max(sent.size) == 1568  # downscaled before sending
    assert "my first day at NASA" in text["text"]
    health = claude.health()
    assert health["status"] == "ok"
    assert health["usage"] == {
        "calls": 1, "input_tokens": 1500, "output_tokens": 120, "cost_usd": 0.0021
    }  # fmt: skip
    await claude.close()


@pytest.mark.parametrize(
    ("status", "transient", "words"),
    [(401, False, "rejected the API key"), (429, True, "rate limit"), (500, True, "HTTP 500")],
)
async def test_api_errors_map_to_degraded(
    serve: Any, status: int, transient: bool, words: str
) -> None:
    claude = analyzer(serve(anthropic_app({"status": status}, [])))
    with pytest.raises(SceneAnalysisError) as info:
        await claude.analyze(photo_png(size=(64, 64)), None)
    assert info.value.transient is transient
    assert words in str(info.value)
    health = claude.health()
    assert health["status"] == "degraded" and words in str(health["error"])
    assert KEY not in json.dumps(health) and KEY not in str(info.value)
    await claude.close()


async def test_sdk_retries_transient_errors_then_recovers(serve: Any) -> None:
    scenario: dict[str, Any] = {"status": 429}
    seen: list[dict[str, Any]] = []
    url = serve(anthropic_app(scenario, seen))
    claude = ClaudeSceneAnalyzer(KEY, base_url=url, timeout_s=10, max_retries=1)
    with pytest.raises(SceneAnalysisError):
        await claude.analyze(photo_png(size=(64, 64)), None)
    assert len(seen) == 2  # the SDK retried once (retry-after-ms: 10)
    scenario["status"] = 200
    await claude.analyze(photo_png(size=(64, 64)), None)
    assert claude.health()["status"] == "ok"  # a success clears the last error
    await claude.close()


async def test_answer_not_matching_schema(serve: Any) -> None:
    bad = json.dumps({**SCENE, "anchor_points": [{"label": "x", "x": 3.0, "y": 0.1}]})
    claude = analyzer(serve(anthropic_app({"status": 200, "text": bad}, [])))
    with pytest.raises(SceneAnalysisError, match="did not fit the scene schema") as info:
        await claude.analyze(photo_png(size=(64, 64)), None)
    assert info.value.transient is False
    await claude.close()


async def test_unreachable_api_is_transient(closed_port_url: str) -> None:
    claude = analyzer(closed_port_url)
    with pytest.raises(SceneAnalysisError, match="cannot reach") as info:
        await claude.analyze(photo_png(size=(64, 64)), None)
    assert info.value.transient is True
    await claude.close()


async def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(SceneConfigError, match="ANTHROPIC_API_KEY"):
        check_config()
    claude = ClaudeSceneAnalyzer(None)
    assert claude.health()["status"] == "not configured"
    with pytest.raises(SceneAnalysisError, match="not configured"):
        await claude.analyze(photo_png(size=(64, 64)), None)
