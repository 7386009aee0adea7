"""Production backends selected from config, end to end through the HTTP API.

The service is started with ``[scene] backend = "claude"``, ``[soundscape] backend =
"elevenlabs"``, ``[storage] backend = "supabase"`` or ``[gpu] backend = "modal"``; the real client
libraries talk to the local stand-ins of tests/integration/adapters (real HTTP servers on
127.0.0.1 speaking each API's wire format). Modal's servers cannot be reached here, so the
deployed class runs in-process (``WorldPlay().generate.local``, CPU pipeline) behind the
spawn/poll interface the pool uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pytest

from gpu.claims import ClaimsClient
from gpu.modal_app import WorldPlay
from gpu.modal_pool import ModalGpuPool
from orchestrator.core.prompt import FALLBACK_PROMPT
from orchestrator.elevenlabs_soundscape import sound_prompt
from orchestrator.scene import SceneInfo
from orchestrator.service import Service
from tests.conftest import photo_png
from tests.e2e.conftest import ServiceFactory, client_for
from tests.integration.adapters.conftest import StubServer
from tests.integration.adapters.modal_fakes import FakeCall, FakeModal
from tests.integration.adapters.test_claude_scene import SCENE, anthropic_app
from tests.integration.adapters.test_elevenlabs_soundscape import elevenlabs_app, mp3_seconds
from tests.integration.adapters.test_supabase_storage import KEY as SUPABASE_KEY
from tests.integration.adapters.test_supabase_storage import storage_app
from tests.videoutil import png_array, probe

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:The WorldPlay.generate function is executing"),
]

CLAUDE_KEY = "sk-ant-e2e-SECRET-0123456789"
XI_KEY = "xi-e2e-SECRET-abcdef"
GPU_PRICE = 0.000694  # [gpu] price_per_gpu_s default, USD per GPU-second
SOUND_S = 1.0
SECRETS = ("ANTHROPIC_API_KEY", "ELEVENLABS_API_KEY", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY")

StandIn = Callable[[Any], str]


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    """``stand_in(app)`` serves ``app`` on a free 127.0.0.1 port and returns its base URL."""
    servers: list[StubServer] = []

    def start(app: Any) -> str:
        servers.append(StubServer(app))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PHOTO = _b64(photo_png("astronaut", size=(256, 256)))


async def _create(client: httpx.AsyncClient, inline: bool = True) -> dict[str, Any]:
    r = await client.post(
        f"/api/memories?inline={str(inline).lower()}",
        json={"image_base64": PHOTO, "prompt": "first day at NASA"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _integrations(
    factory: ServiceFactory,
    stand_in: StandIn,
    monkeypatch: pytest.MonkeyPatch,
    claude_status: int = 200,
) -> tuple[Service, list[dict[str, Any]], list[dict[str, Any]]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", CLAUDE_KEY)
    monkeypatch.setenv("ELEVENLABS_API_KEY", XI_KEY)
    to_claude: list[dict[str, Any]] = []
    to_xi: list[dict[str, Any]] = []
    claude_url = stand_in(anthropic_app({"status": claude_status}, to_claude))
    xi_url = stand_in(elevenlabs_app({"status": 200}, to_xi))
    svc: Service = await factory(
        scene={"backend": "claude", "base_url": claude_url, "max_retries": 0, "timeout_s": 10},
        soundscape={"backend": "elevenlabs", "base_url": xi_url, "duration_s": SOUND_S},
    )
    return svc, to_claude, to_xi


async def test_claude_scene_and_elevenlabs_audio_with_their_cost(
    service_factory: ServiceFactory, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, to_claude, to_xi = await _integrations(service_factory, stand_in, monkeypatch)
    async with client_for(svc) as client:
        created = await _create(client)
        assert created["scene"] == SCENE  # Claude's answer, not the offline analysis
        audio = base64.b64decode(created["audio_base64"])
        assert abs(mp3_seconds(audio) - SOUND_S) < 0.1  # a real, decodable MP3
        memory_id = created["memory_id"]
        served = await client.get(created["audio_url"])
        assert served.status_code == 200 and served.content == audio
        assert served.headers["content-type"] == "audio/mpeg"
        # What went over the wire: the configured model; the sound prompt from Claude's scene.
        assert to_claude[0]["body"]["model"] == "claude-haiku-4-5"
        scene = SceneInfo.model_validate(SCENE)
        assert to_xi[0]["body"]["text"] == sound_prompt(scene)
        assert to_xi[0]["body"]["duration_seconds"] == SOUND_S

        memory = (await client.get(f"/api/memories/{memory_id}")).json()
        assert memory["scene"] == SCENE and memory["audio_url"] == created["audio_url"]
        cost = memory["cost"]
        # The stand-in bills 1500 input + 120 output tokens: $1 / $5 per million (haiku 4.5).
        assert (cost["llm_input_tokens"], cost["llm_output_tokens"]) == (1500, 120)
        assert cost["llm_usd"] == pytest.approx(0.0021)
        assert cost["sound_seconds"] == SOUND_S
        assert cost["sound_characters"] == len(sound_prompt(scene))
        assert cost["sound_usd"] == pytest.approx(SOUND_S * 0.006)
        assert cost["gpu_seconds"] > 0
        assert cost["gpu_usd"] == pytest.approx(cost["gpu_seconds"] * GPU_PRICE, abs=2e-6)
        total = cost["gpu_usd"] + cost["llm_usd"] + cost["sound_usd"]
        assert cost["total_usd"] == pytest.approx(total, abs=1e-6)

        health = (await client.get("/api/health")).json()
        assert health["status"] == "healthy" and health["degraded_parts"] == []
        assert health["scene"]["status"] == "ok" and health["scene"]["backend"] == "claude"
        assert health["scene"]["usage"]["input_tokens"] == 1500
        assert health["soundscape"]["status"] == "ok"
        assert health["soundscape"]["usage"]["seconds"] == SOUND_S
        assert CLAUDE_KEY not in json.dumps(health) and XI_KEY not in json.dumps(health)

        # Concurrent memories each get their own calls billed, not each other's.
        pair = await asyncio.gather(_create(client, inline=False), _create(client, inline=False))
        for other in pair:
            r = await client.get(f"/api/memories/{other['memory_id']}")
            assert r.json()["cost"]["llm_input_tokens"] == 1500
            assert r.json()["cost"]["sound_seconds"] == SOUND_S

    # The same numbers for analysts: one memory_costs row per call, and the v_memory_costs view.
    async with svc.db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind, backend, model, units, quantity, usd FROM memory_costs "
            "WHERE memory_id = $1 ORDER BY kind",
            memory_id,
        )
        view = await conn.fetchrow("SELECT * FROM v_memory_costs WHERE memory_id = $1", memory_id)
    assert [(r["kind"], r["backend"], r["units"]) for r in rows] == [
        ("llm", "claude", "tokens"),
        ("sound", "elevenlabs", "seconds"),
    ]
    assert rows[0]["model"] == "claude-haiku-4-5" and rows[0]["quantity"] == 1620
    assert view is not None and view["llm_calls"] == 1 and view["sound_calls"] == 1
    assert view["total_usd"] == pytest.approx(cost["total_usd"], abs=1e-6)


async def test_claude_failure_leaves_the_scene_null_and_health_degraded(
    service_factory: ServiceFactory, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, to_claude, to_xi = await _integrations(
        service_factory, stand_in, monkeypatch, claude_status=500
    )
    async with client_for(svc) as client:
        created = await _create(client)  # the memory is still created, with its root chunk
        assert created["scene"] is None and created["audio_base64"] is None
        assert created["chunk"]["video_base64"]
        assert len(to_claude) == 1 and to_xi == []  # no scene, so no sound prompt
        memory = (await client.get(f"/api/memories/{created['memory_id']}")).json()
        assert memory["scene"] is None and memory["audio_url"] is None
        assert memory["cost"]["llm_usd"] == 0 and memory["cost"]["llm_input_tokens"] == 0

        r = await client.get("/api/health")
        assert r.status_code == 200
        health = r.json()
        assert health["status"] == "degraded" and health["degraded_parts"] == ["scene"]
        assert health["scene"]["status"] == "degraded"
        assert "HTTP 500" in health["scene"]["error"]
        assert health["soundscape"]["status"] == "ok"
        assert CLAUDE_KEY not in r.text and XI_KEY not in r.text


async def test_integrations_without_keys_run_and_say_so(
    service_factory: ServiceFactory,
) -> None:
    svc = await service_factory(scene={"backend": "claude"}, soundscape={"backend": "elevenlabs"})
    async with client_for(svc) as client:
        created = await _create(client)
        # No silent fallback to the offline analysis: the field is null and health says why.
        assert created["scene"] is None and created["audio_base64"] is None
        health = (await client.get("/api/health")).json()
        assert health["status"] == "degraded"
        assert health["degraded_parts"] == ["scene", "soundscape"]
        assert health["scene"]["status"] == "not configured"
        assert "ANTHROPIC_API_KEY" in health["scene"]["detail"]
        assert health["soundscape"]["status"] == "not configured"
        assert "ELEVENLABS_API_KEY" in health["soundscape"]["detail"]


async def test_supabase_storage_serves_media_through_signed_urls(
    service_factory: ServiceFactory, stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    state: dict[str, Any] = {}
    storage_url = stand_in(storage_app(state))
    monkeypatch.setenv("SUPABASE_URL", storage_url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", SUPABASE_KEY)
    svc = await service_factory(storage={"backend": "supabase", "signed_url_ttl_s": 120})
    async with client_for(svc) as client, httpx.AsyncClient(timeout=30) as outside:
        created = await _create(client, inline=False)
        memory_id, root = created["memory_id"], created["chunk"]
        assert root["video_base64"] is None
        stored = {bucket for bucket, _ in state["objects"]}
        assert stored == {"originals", "videos", "frames"}
        assert not any((svc.settings.blob_root / "videos").glob("*/*.mp4"))  # nothing local

        r = await client.get(root["video_url"])
        assert r.status_code == 307
        signed = r.headers["location"]
        assert signed.startswith(f"{storage_url}/storage/v1/object/sign/videos/{memory_id}/")
        assert state["expires_in"] == "120"  # [storage] signed_url_ttl_s
        video = await outside.get(signed)  # the browser follows it, without the service key
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        clip = probe(video.content)
        assert (clip.frames, clip.width, clip.height) == (33, 160, 96)

        frame = await outside.get((await client.get(root["last_frame_url"])).headers["location"])
        assert png_array(frame.content).shape == (96, 160, 3)
        image = await client.get(created["original_image_url"], follow_redirects=False)
        assert image.status_code == 307
        assert (await outside.get(image.headers["location"])).content[:8] == b"\x89PNG\r\n\x1a\n"

        # A child chunk starts from the parent's last frame, read back from Supabase.
        r = await client.post(
            f"/api/memories/{memory_id}/chunks",
            json={"parent_chunk_id": root["chunk_id"], "action": "w"},
        )
        assert r.status_code == 200, r.text
        child = r.json()["chunk"]
        assert probe(base64.b64decode(child["video_base64"])).frames == 33
        assert (await client.get("/api/health")).json()["storage"]["status"] == "ok"

        state["fail"] = True  # Supabase answers 500: a 503 the client may retry, in JSON
        r = await client.get(child["video_url"])
        assert r.status_code == 503
        assert r.json()["error"] == "storage_unavailable"
        assert "videos/" in r.json()["detail"] and SUPABASE_KEY not in r.text
        health = (await client.get("/api/health")).json()
        assert health["storage"]["status"] == "degraded" and health["status"] == "degraded"
        assert "storage" in health["degraded_parts"]


class _Aio:
    def __init__(self, fn: Any) -> None:
        self.aio = fn


class InProcessDeployment:
    """The deployed ``WorldPlay.generate`` run in-process, behind ``spawn.aio`` -> FunctionCall."""

    def __init__(self) -> None:
        self.obj = WorldPlay()
        self.kwargs: list[dict[str, Any]] = []
        self.spawn = _Aio(self._spawn)

    async def _spawn(self, **kwargs: Any) -> FakeCall:
        self.kwargs.append(kwargs)
        out = self.obj.generate.local(**kwargs)
        return FakeCall([TimeoutError(), out], object_id=f"fc-e2e-{len(self.kwargs):03d}")


async def test_modal_pool_stores_each_call_id_and_its_gpu_cost(
    service_factory: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-e2e")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-e2e-SECRET")
    monkeypatch.setenv("REWIND_PIPELINE", "cpu")  # the deployment's CPU pipeline
    svc = await service_factory(gpu={"backend": "modal", "poll_s": 0.01, "max_containers": 2})
    pool = cast(ModalGpuPool, svc.pool)
    assert pool.name == "modal" and pool.where == "rewind-worldplay/WorldPlay"
    deployment = InProcessDeployment()
    pool._method = deployment  # Modal's servers are out of reach: the class runs here
    fake = FakeModal()  # ... and so are the claims Dict and the deployment lookup
    pool._claims = ClaimsClient(fake.dict)
    pool.deployment = fake.deployment()
    async with client_for(svc) as client:
        created = await _create(client)
        clip = probe(base64.b64decode(created["chunk"]["video_base64"]))
        assert (clip.frames, clip.width, clip.height) == (33, 160, 96)
        assert deployment.kwargs[0]["pose"] == "w-8" and deployment.kwargs[0]["frames"] == 33
        async with svc.db.pool.acquire() as conn:
            job = await conn.fetchrow(
                "SELECT backend, external_id, gpu_seconds, cost_usd FROM gpu_jobs "
                "WHERE memory_id = $1",
                created["memory_id"],
            )
        assert job is not None
        assert (job["backend"], job["external_id"]) == ("modal", "fc-e2e-001")
        assert job["gpu_seconds"] > 0
        assert job["cost_usd"] == pytest.approx(job["gpu_seconds"] * GPU_PRICE)
        cost = (await client.get(f"/api/memories/{created['memory_id']}")).json()["cost"]
        assert cost["gpu_seconds"] == pytest.approx(job["gpu_seconds"], abs=1e-3)
        health = (await client.get("/api/health")).json()
        assert health["gpu"]["backend"] == "modal" and health["gpu"]["status"] == "ok"
        assert health["gpu"]["calls"] == 1 and "as-e2e-SECRET" not in json.dumps(health)
        # The prompt reaches the model: the user's for the root (it does not wait for the scene)
        # and the job id for the run-once claim.
        assert deployment.kwargs[0]["prompt"] == "first day at NASA"
        assert deployment.kwargs[0]["job_id"] == str(job_id_of(deployment.kwargs[0]))
        # No user prompt: the root gets the fallback, its child the stored scene description.
        r = await client.post("/api/memories", json={"image_base64": PHOTO})
        assert r.status_code == 200, r.text
        plain = r.json()
        assert deployment.kwargs[1]["prompt"] == FALLBACK_PROMPT
        r = await client.post(
            f"/api/memories/{plain['memory_id']}/chunks?inline=false",
            json={"parent_chunk_id": plain["chunk"]["chunk_id"], "action": "w"},
        )
        assert r.status_code == 200, r.text
        scene = (await client.get(f"/api/memories/{plain['memory_id']}")).json()["scene"]
        assert deployment.kwargs[-1]["prompt"] == scene["description"] != FALLBACK_PROMPT


def job_id_of(kwargs: dict[str, Any]) -> str:
    """The job id a spawn carried (a gpu_jobs UUID)."""
    return str(uuid.UUID(kwargs["job_id"]))
