"""ElevenLabsSoundscape via the real elevenlabs client against a local sound-generation stand-in."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from orchestrator.elevenlabs_soundscape import (
    ElevenLabsSoundscape,
    SoundscapeConfigError,
    SoundscapeError,
    check_config,
    sound_prompt,
)
from orchestrator.scene import SceneInfo

KEY = "xi-test-SECRET-abcdef"
SCENE = SceneInfo(
    description="A beach at sunset.",
    mood="peaceful, nostalgic",
    anchor_points=[],
    sound_keywords=["ocean waves", "seagulls", "wind"],
)


def mp3_tone(seconds: float, rate: int = 44100) -> bytes:
    """A real MP3 (440 Hz sine, mono) of ``seconds``, encoded with PyAV's libmp3lame."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(samples), 1152):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1152], format="flt", layout="mono"
            )
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def mp3_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        return samples / stream.rate


def elevenlabs_app(scenario: dict[str, Any], seen: list[dict[str, Any]]) -> FastAPI:
    """POST /v1/sound-generation: MP3 bytes streamed in chunks, or an ElevenLabs error body."""
    app = FastAPI()

    @app.post("/v1/sound-generation")
    async def sound_generation(request: Request) -> Response:
        body = await request.json()
        seen.append({"headers": dict(request.headers), "body": body})
        status = scenario["status"]
        if status == 401:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return JSONResponse({"detail": detail}, status_code=401)
        if status == 422:
            detail = [{"loc": ["body", "duration_seconds"], "msg": "must be <= 30", "type": "x"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if status != 200:
            return JSONResponse({"detail": {"message": "busy"}}, status_code=status)
        audio = mp3_tone(body["duration_seconds"])

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), 4096):  # several chunks: the client must join them
                yield audio[start : start + 4096]

        return StreamingResponse(chunks(), media_type="audio/mpeg")

    return app


async def test_soundscape_over_http(serve: Any) -> None:
    seen: list[dict[str, Any]] = []
    sound = ElevenLabsSoundscape(
        KEY, base_url=serve(elevenlabs_app({"status": 200}, seen)), duration_s=3.0
    )
    audio = await sound.generate(SCENE)
    assert audio is not None and audio.content_type == "audio/mpeg"
    assert audio.duration_s == 3.0
    assert len(audio.data) > 4096  # more than one streamed chunk, joined in order
    assert abs(mp3_seconds(audio.data) - 3.0) < 0.1  # a real, decodable MP3
    request = seen[0]
    assert request["headers"]["xi-api-key"] == KEY
    assert request["body"]["text"] == sound_prompt(SCENE)
    assert "ocean waves, seagulls, wind" in request["body"]["text"]
    assert request["body"]["duration_seconds"] == 3.0
    assert request["body"]["prompt_influence"] == 0.3 and request["body"]["loop"] is True
    health = sound.health()
    assert health["status"] == "ok" and health["usage"] == {
        "calls": 1, "seconds": 3.0, "cost_usd": 0.0
    }  # fmt: skip
    await sound.close()


@pytest.mark.parametrize(
    ("status", "transient", "words"),
    [(401, False, "rejected the API key"), (422, False, "must be <= 30"), (503, True, "busy")],
)
async def test_api_errors(serve: Any, status: int, transient: bool, words: str) -> None:
    sound = ElevenLabsSoundscape(KEY, base_url=serve(elevenlabs_app({"status": status}, [])))
    with pytest.raises(SoundscapeError) as info:
        await sound.generate(SCENE)
    assert info.value.transient is transient
    assert words in str(info.value)
    health = sound.health()
    assert health["status"] == "degraded" and words in str(health["error"])
    assert KEY not in json.dumps(health) and KEY not in str(info.value)
    await sound.close()


async def test_duration_is_clamped_to_the_api_range() -> None:
    assert ElevenLabsSoundscape(KEY, duration_s=90).duration_s == 30.0
    assert ElevenLabsSoundscape(KEY, duration_s=0.1).duration_s == 0.5


async def test_unreachable_api_is_transient(closed_port_url: str) -> None:
    sound = ElevenLabsSoundscape(KEY, base_url=closed_port_url, timeout_s=5)
    with pytest.raises(SoundscapeError, match="cannot reach") as info:
        await sound.generate(SCENE)
    assert info.value.transient is True
    await sound.close()


async def test_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    with pytest.raises(SoundscapeConfigError, match="ELEVENLABS_API_KEY"):
        check_config()
    sound = ElevenLabsSoundscape(None)
    assert sound.health()["status"] == "not configured"
    with pytest.raises(SoundscapeError, match="not configured"):
        await sound.generate(SCENE)


def test_prompt_falls_back_to_the_description() -> None:
    quiet = SCENE.model_copy(update={"sound_keywords": []})
    assert "A beach at sunset." in sound_prompt(quiet)
