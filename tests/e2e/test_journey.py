"""Journey replay: GET /api/sessions/{id}/journey.mp4 stitches the session's path into one MP4.

The journey keeps every frame of every chunk (stream copy cannot drop a chunk's first frame, its
only keyframe), so its frame count is the sum of the chunks' frame counts, and decoding it gives
exactly the chunks' own frames, in path order.
"""

from __future__ import annotations

import base64
import io
import math
import uuid
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from gpu.render import render_chunk
from orchestrator import repo
from orchestrator.journey import stitch
from orchestrator.storage import audio_key
from tests.conftest import photo_jpeg, photo_png
from tests.e2e.conftest import SMALL, client_for
from tests.videoutil import mean_abs_diff, probe

pytestmark = pytest.mark.e2e

FRAMES = 33
assert SMALL["frames"] == FRAMES


def _frames(mp4: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(mp4), "r") as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _wav(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.2 * 32767 * np.sin(2 * math.pi * 440 * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


async def _walk(client: httpx.AsyncClient, actions: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    r = await client.post(
        "/api/memories?inline=false",
        json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
    )
    assert r.status_code == 200, r.text
    created = r.json()
    chunks = [created["chunk"]]
    for action in actions:
        r = await client.post(
            f"/api/memories/{created['memory_id']}/chunks?inline=false",
            json={
                "parent_chunk_id": chunks[-1]["chunk_id"],
                "action": action,
                "session_id": created["session_id"],
            },
        )
        assert r.status_code == 200, r.text
        chunks.append(r.json()["chunk"])
    return created, *chunks


async def test_journey_is_the_chunks_back_to_back(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory()
    async with client_for(svc) as client:
        created, *chunks = await _walk(client, ("w", "w+right"))
        r = await client.get(f"/api/sessions/{created['session_id']}/journey.mp4")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "video/mp4"
        assert "attachment" in r.headers["content-disposition"]
        journey = probe(r.content)
        assert journey.frames == FRAMES * len(chunks)  # root + 2 chunks, every frame kept
        assert (journey.width, journey.height) == (SMALL["width"], SMALL["height"])
        assert journey.codec == "h264"
        with av.open(io.BytesIO(r.content), "r") as container:
            assert not container.streams.audio  # no soundscape on the embedded default
        # Stream copy: the journey's frames are the chunks' own decoded frames, in path order.
        stitched = _frames(r.content)
        for i, chunk in enumerate(chunks):
            own = _frames((await client.get(chunk["video_url"])).content)
            assert len(own) == FRAMES
            for j in (0, FRAMES // 2, FRAMES - 1):
                assert mean_abs_diff(stitched[i * FRAMES + j], own[j]) < 0.5


async def test_journey_on_the_default_relative_data_folder(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default data folder is ``.rewind`` relative to the working directory: ffmpeg's concat
    list (in a temp folder) must still find the chunks (it answered 500 when it named them
    relatively)."""
    from orchestrator.config import Settings
    from orchestrator.service import Service
    from tests.e2e.conftest import make_settings

    monkeypatch.chdir(tmp_path)
    assert Settings.model_fields["server"].default.data_dir == Path(".rewind")
    svc = await Service.start(make_settings(database_url, Path(".rewind")))
    try:
        async with client_for(svc) as client:
            created, *chunks = await _walk(client, ("w", "d"))
            r = await client.get(f"/api/sessions/{created['session_id']}/journey.mp4")
            assert r.status_code == 200, r.text
            assert probe(r.content).frames == FRAMES * len(chunks)
            assert any((tmp_path / ".rewind" / "blobs" / "videos").rglob("*.mp4"))
    finally:
        await svc.close()


async def test_journey_muxes_the_soundscape(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory()
    async with client_for(svc) as client:
        created, *_ = await _walk(client, ("d",))
        # The embedded default makes no audio; store a soundscape as a backend would.
        memory_id = uuid.UUID(created["memory_id"])
        key = audio_key(str(memory_id), "wav")
        await svc.store.put("audio", key, _wav(0.5), "audio/wav")  # shorter: it is looped
        async with svc.db.pool.acquire() as conn:
            await repo.set_memory_audio(conn, memory_id, key, "audio/wav")
        r = await client.get(f"/api/sessions/{created['session_id']}/journey.mp4")
        assert r.status_code == 200, r.text
        assert probe(r.content).frames == FRAMES * 2
        with av.open(io.BytesIO(r.content), "r") as container:
            assert len(container.streams.audio) == 1
            audio = container.streams.audio[0]
            assert audio.codec_context.name == "aac"
            samples = [f.samples for f in container.decode(audio)]
            seconds = sum(samples) / audio.codec_context.rate
        video_s = FRAMES * 2 / 24
        assert abs(seconds - video_s) < 0.15, (seconds, video_s)


async def test_journey_errors(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory()
    async with client_for(svc) as client:
        unknown = uuid.uuid4()
        r = await client.get(f"/api/sessions/{unknown}/journey.mp4")
        assert r.status_code == 404
        assert r.json() == {
            "error": "not_found",
            "detail": f"no session {unknown}",
            "field": "session_id",
        }
        r = await client.get("/api/sessions/not-a-uuid/journey.mp4")
        assert r.status_code == 422
        assert r.json()["field"] == "session_id"

        created, *_ = await _walk(client, ())
        empty = uuid.uuid4()
        async with svc.db.pool.acquire() as conn:  # a session whose path is still empty
            await repo.insert_session(
                conn, empty, uuid.UUID(created["memory_id"]), None, "none", "default"
            )
        r = await client.get(f"/api/sessions/{empty}/journey.mp4")
        assert r.status_code == 409
        body = r.json()
        assert body["error"] == "journey_empty" and body["field"] == "session_id"
        assert str(empty) in body["detail"]


async def test_stitch_reencodes_chunks_of_different_profiles(tmp_path: Path) -> None:
    """Stream copy needs identical streams; otherwise every chunk is scaled to the first."""
    photo = photo_png("astronaut", (320, 240))
    small = render_chunk(photo, "w-8", FRAMES, 160, 96, 24).video_mp4
    large = render_chunk(photo, "a-8", FRAMES, 320, 180, 24).video_mp4
    (tmp_path / "a.mp4").write_bytes(small)
    (tmp_path / "b.mp4").write_bytes(large)
    out = tmp_path / "out.mp4"
    copied = await stitch([tmp_path / "a.mp4", tmp_path / "b.mp4"], out, fps=24)
    assert copied is False
    result = probe(out.read_bytes())
    assert result.frames == 2 * FRAMES
    assert (result.width, result.height) == (160, 96)

    same = tmp_path / "same.mp4"
    assert await stitch([tmp_path / "a.mp4", tmp_path / "a.mp4"], same, fps=24) is True
    assert probe(same.read_bytes()).frames == 2 * FRAMES
