"""HTTP routes: the seed's API (memories, chunks, health) plus media and session endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel

from orchestrator import repo
from orchestrator.abandon import client_watch, mark_if_gone
from orchestrator.access_log import note
from orchestrator.api_fast import LeanRoute
from orchestrator.auth import Principal
from orchestrator.backends import SignedUrls
from orchestrator.db_supervisor import is_database_error
from orchestrator.errors import NotFound
from orchestrator.faults import ready_on_disk
from orchestrator.gate import MediaCaller, User
from orchestrator.memories import b64, create_memory, request_next_chunk
from orchestrator.scene import AnchorPoint, SceneInfo
from orchestrator.scheduler import ServedChunk
from orchestrator.schemas import (
    ChunkCreated,
    ChunkOut,
    ChunkRequest,
    CreateMemory,
    MemoryCreated,
    MemoryOut,
    SessionCreated,
    TreeChunk,
)
from orchestrator.service import Service
from orchestrator.storage import BlobNotFound, Bucket, video_key

router = APIRouter(prefix="/api")
Inline = Annotated[
    bool, Query(description="include video_base64 (true, seed default) or URLs only (false)")
]


async def service(request: Request) -> Service:
    """The running Service (set by the app's lifespan)."""
    svc: Service = request.app.state.service
    return svc


Svc = Annotated[Service, Depends(service)]


async def _chunk_out(
    svc: Service, served: ServedChunk, inline: bool, caller: Principal
) -> ChunkOut:
    cid = served.chunk_id
    text = str(cid)  # formatted once (a UUID's str is ~1 us each time)
    video = (
        await svc.store.get("videos", video_key(str(served.memory_id), text)) if inline else None
    )
    sign = svc.gate.signer.sign
    return ChunkOut(
        chunk_id=cid,
        video_base64=b64(video) if video is not None else None,
        pose=served.pose,
        chunk_index=served.chunk_index,
        parent_chunk_id=served.parent_chunk_id,
        action=served.action,
        video_url=sign(f"/api/chunks/{text}/video", caller),
        last_frame_url=sign(f"/api/chunks/{text}/frame", caller),
        outcome=served.outcome,
        wait_ms=round(served.wait_ms, 1),
        job_id=served.job_id,
    )


def _may_read_offline(svc: Service, row: dict[str, Any], caller: Principal | None) -> bool:
    if caller is None or caller.is_operator:
        return True
    access = svc.gate.ownership.memories.get(uuid.UUID(str(row["video_path"]).split("/")[0]))
    return access is not None and caller.can_read(access.owner, access.shared)


def _scene(row: repo.Row) -> SceneInfo | None:
    if row["scene_description"] is None:
        return None
    return SceneInfo(
        description=row["scene_description"],
        mood=row["scene_mood"] or "",
        anchor_points=[AnchorPoint(**a) for a in row["anchor_points"] or []],
        sound_keywords=list(row["sound_keywords"] or []),
    )


@router.post("/memories", response_model=MemoryCreated, response_model_exclude_none=False)
async def post_memory(
    body: CreateMemory, svc: Svc, caller: User, request: Request, inline: Inline = True
) -> MemoryCreated:
    """Start a memory from a photo: scene, root chunk (pose w-31) and soundscape (seed)."""
    await svc.gate.usage.fresh(svc.db.pool)
    svc.gate.usage.check_demand(caller)
    async with client_watch(request, svc.db) as watch:
        created = await create_memory(svc, body.image_base64, body.prompt, caller.user_id)
        if created.served.request_id is not None:
            watch.note_request(created.served.request_id)
    note(outcome="root", memory_id=str(created.memory_id), wait_ms=round(created.served.wait_ms))
    audio = created.audio
    sign = svc.gate.signer.sign
    mid = created.memory_id
    return MemoryCreated(
        memory_id=created.memory_id,
        session_id=created.session_id,
        policy=created.arm.policy,
        arm=created.arm.name,
        chunk=await _chunk_out(svc, created.served, inline, caller),
        audio_base64=b64(audio.data) if audio is not None and inline else None,
        audio_url=sign(f"/api/memories/{mid}/audio", caller) if audio is not None else None,
        scene=created.scene,
        original_image_url=sign(f"/api/memories/{mid}/image", caller),
    )


async def post_chunk(
    memory_id: uuid.UUID,
    body: ChunkRequest,
    caller: User,
    request: Request,
    inline: Inline = True,
) -> Response:
    """Generate (or serve from cache) the next chunk from the parent's last frame (seed).

    The answer is a ``ChunkCreated``, serialised here by its own pydantic serializer (the
    bytes FastAPI's ``response_model`` path writes, without re-validating the model it was
    just built as: the hit path's cost, issue 10)."""
    svc: Service = request.app.state.service  # not a dependency: the hit path's cost (issue 10)
    await svc.gate.usage.fresh(svc.db.pool)
    svc.gate.usage.check_demand(caller)
    served, session_id = await request_next_chunk(
        svc, memory_id, body.parent_chunk_id, body.pose, body.action, body.session_id, caller
    )
    if served.outcome != "hit" and served.request_id is not None:
        await mark_if_gone(request, svc.db, served.request_id)  # a viewer who left: abandoned
    note(outcome=served.outcome, chunk_id=str(served.chunk_id), wait_ms=round(served.wait_ms))
    created = ChunkCreated(chunk=await _chunk_out(svc, served, inline, caller),
                           session_id=session_id)  # fmt: skip
    return Response(_CHUNK_CREATED.to_json(created, by_alias=True), media_type=JSON)


# The hit route: FastAPI's generic handler only for requests the lean one leaves to it (api_fast).
router.add_api_route("/memories/{memory_id}/chunks", post_chunk, methods=["POST"],
                     response_model=ChunkCreated, route_class_override=LeanRoute)  # fmt: skip


_CHUNK_CREATED = ChunkCreated.__pydantic_serializer__
JSON = "application/json"


class MemoryCost(BaseModel):
    """What a memory has cost so far (the ``v_memory_costs`` view).

    GPU: every generation attempt of its chunks, speculative and cancelled ones included
    (GPU-seconds x ``[gpu] price_per_gpu_s``). LLM: Claude scene analysis tokens. Sound:
    ElevenLabs seconds generated. USD at the prices configured when each call was made.
    """

    gpu_seconds: float
    gpu_usd: float
    llm_input_tokens: int
    llm_output_tokens: int
    llm_usd: float
    sound_seconds: float
    sound_characters: int
    sound_usd: float
    total_usd: float


class MemoryDetail(MemoryOut):
    """GET /api/memories/{id}: the seed's shape plus ``cost``."""

    cost: MemoryCost


def _cost(row: repo.Row | None) -> MemoryCost:
    if row is None:  # the memory was deleted in between: nothing spent that we can see
        return MemoryCost(
            gpu_seconds=0, gpu_usd=0, llm_input_tokens=0, llm_output_tokens=0, llm_usd=0,
            sound_seconds=0, sound_characters=0, sound_usd=0, total_usd=0,
        )  # fmt: skip
    return MemoryCost(
        gpu_seconds=round(row["gpu_seconds"], 3),
        gpu_usd=round(row["gpu_usd"], 6),
        llm_input_tokens=row["llm_input_tokens"],
        llm_output_tokens=row["llm_output_tokens"],
        llm_usd=round(row["llm_usd"], 6),
        sound_seconds=round(row["sound_seconds"], 3),
        sound_characters=row["sound_characters"],
        sound_usd=round(row["sound_usd"], 6),
        total_usd=round(row["total_usd"], 6),
    )


@router.get("/memories/{memory_id}", response_model=MemoryDetail)
async def get_memory(memory_id: uuid.UUID, svc: Svc, caller: User) -> MemoryDetail:
    """The memory, its full chunk tree (replay, seed) and what it has cost."""
    sign = svc.gate.signer.sign
    async with svc.db.pool.acquire() as conn:
        await svc.gate.ownership.readable_memory(conn, caller, memory_id)
        memory = await repo.get_memory(conn, memory_id)
        if memory is None:
            raise NotFound(f"no memory {memory_id}", field="memory_id")
        chunks = await repo.chunks_of_memory(conn, memory_id)
        cost = await repo.memory_cost(conn, memory_id)
    return MemoryDetail(
        memory_id=memory_id,
        original_image_url=sign(f"/api/memories/{memory_id}/image", caller),
        prompt=memory["prompt"],
        scene=_scene(memory),
        audio_url=sign(f"/api/memories/{memory_id}/audio", caller)
        if memory["audio_path"]
        else None,
        chunks=[
            TreeChunk(
                chunk_id=c["id"],
                parent_chunk_id=c["parent_chunk_id"],
                pose=c["pose"],
                action=c["action"],
                chunk_index=c["chunk_index"],
                status=c["status"],
                video_url=sign(f"/api/chunks/{c['id']}/video", caller)
                if c["status"] == "ready"
                else None,
            )
            for c in chunks
        ],
        cost=_cost(cost),
    )


@router.post("/memories/{memory_id}/sessions", response_model=SessionCreated, status_code=201)
async def post_session(memory_id: uuid.UUID, svc: Svc, caller: User) -> SessionCreated:
    """Start another viewer's walk through an existing memory (own or shared), at its root."""
    async with svc.db.pool.acquire() as conn:
        await svc.gate.ownership.readable_memory(conn, caller, memory_id)
        if await repo.get_memory(conn, memory_id) is None:
            raise NotFound(f"no memory {memory_id}", field="memory_id")
        chunks = await repo.chunks_of_memory(conn, memory_id)
        root = next((c for c in chunks if c["parent_chunk_id"] is None), None)
        if root is None or root["status"] != "ready":
            raise NotFound(f"memory {memory_id} has no ready root chunk", field="memory_id")
        session_id = uuid.uuid4()
        arm = svc.scheduler.policies.assign(session_id)
        await repo.insert_session(
            conn, session_id, memory_id, root["id"], arm.policy, arm.name, caller.user_id
        )
    svc.gate.ownership.remember_session(session_id, caller.user_id, memory_id)
    svc.gate.usage.note_session(session_id, caller.user_id)
    await svc.scheduler.open_session(session_id, memory_id, root["id"], arm.name)
    return SessionCreated(
        session_id=session_id,
        memory_id=memory_id,
        cursor_chunk_id=root["id"],
        policy=arm.policy,
        arm=arm.name,
    )


async def _blob(svc: Service, bucket: Bucket, key: str | None, media_type: str) -> Response:
    """The blob: the local file (with Range), or a 307 to a signed URL on a remote store.

    Raises:
        NotFound: nothing stored, or the blob is missing.
        StorageUnavailable: (503) the remote store failed or could not be reached.
    """
    if key is None:
        raise NotFound(f"nothing stored in {bucket}")
    path = svc.store.local_path(bucket, key)
    if path is not None and path.exists():
        return FileResponse(path, media_type=media_type)  # Starlette serves HTTP Range
    if path is None and isinstance(svc.store, SignedUrls):
        # The storage serves the bytes (and Range) itself; the URL expires after the TTL.
        try:
            url = await svc.store.signed_url(bucket, key, svc.settings.storage.signed_url_ttl_s)
        except BlobNotFound as exc:
            raise NotFound(f"{bucket}/{key} is missing from storage") from exc
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
    try:
        return Response(await svc.store.get(bucket, key), media_type=media_type)
    except BlobNotFound as exc:
        raise NotFound(f"{bucket}/{key} is missing from storage") from exc


async def _ready_chunk(
    svc: Service, chunk_id: uuid.UUID, caller: Principal | None
) -> repo.Row | dict[str, Any]:
    """The ready chunk, if ``caller`` may read its memory (None: a signed URL already says so).

    While the database is down, a ready chunk whose files are on disk is still served to a
    caller the ownership cache already knows may read it. Raises NotFound alike for unknown,
    not ready and not readable chunks.
    """
    try:
        async with svc.db.pool.acquire() as conn:
            row: repo.Row | dict[str, Any] | None = await repo.get_chunk(conn, chunk_id)
            if row is not None and caller is not None:
                access = await svc.gate.ownership.memory_access(conn, row["memory_id"])
                if access is None or not caller.can_read(access.owner, access.shared):
                    row = None
    except Exception as exc:
        fallback = ready_on_disk(svc, chunk_id) if is_database_error(exc) else None
        if fallback is None or not _may_read_offline(svc, fallback, caller):
            raise
        return fallback
    if row is None or row["status"] != "ready":
        raise NotFound(f"no ready chunk {chunk_id}", field="chunk_id")
    return row


@router.get("/chunks/{chunk_id}/video", response_class=FileResponse)
async def get_chunk_video(chunk_id: uuid.UUID, svc: Svc, caller: MediaCaller) -> Response:
    """The chunk's MP4 (HTTP Range supported)."""
    row = await _ready_chunk(svc, chunk_id, caller)
    return await _blob(svc, "videos", row["video_path"], "video/mp4")


@router.get("/chunks/{chunk_id}/frame", response_class=FileResponse)
async def get_chunk_frame(chunk_id: uuid.UUID, svc: Svc, caller: MediaCaller) -> Response:
    """The chunk's last frame as PNG (the input of its children)."""
    row = await _ready_chunk(svc, chunk_id, caller)
    return await _blob(svc, "frames", row["last_frame_path"], "image/png")


async def _memory_row(svc: Service, memory_id: uuid.UUID, caller: Principal | None) -> repo.Row:
    async with svc.db.pool.acquire() as conn:
        if caller is not None:
            await svc.gate.ownership.readable_memory(conn, caller, memory_id)
        row = await repo.get_memory(conn, memory_id)
    if row is None:
        raise NotFound(f"no memory {memory_id}", field="memory_id")
    return row


@router.get("/memories/{memory_id}/image", response_class=FileResponse)
async def get_memory_image(memory_id: uuid.UUID, svc: Svc, caller: MediaCaller) -> Response:
    """The uploaded photo, normalised to RGB PNG."""
    row = await _memory_row(svc, memory_id, caller)
    return await _blob(svc, "originals", row["original_image_path"], "image/png")


@router.get("/memories/{memory_id}/audio", response_class=FileResponse)
async def get_memory_audio(memory_id: uuid.UUID, svc: Svc, caller: MediaCaller) -> Response:
    """The memory's soundscape (404 when there is none)."""
    row = await _memory_row(svc, memory_id, caller)
    return await _blob(svc, "audio", row["audio_path"], row["audio_content_type"] or "audio/mpeg")


@router.get("/health")
async def health(svc: Svc) -> dict[str, object]:
    """Database, storage, GPU pool and each integration, reported honestly.

    Each part has ``status`` ok / degraded (with the last ``error``) / not configured (with
    ``detail`` saying what is missing); never a key. The overall status is "degraded" when the
    database, storage or GPU pool is not ok, or when an integration selected in the
    configuration (``[scene] backend = "claude"``, ``[soundscape] backend = "elevenlabs"``) is
    not ok; ``degraded_parts`` names them.
    """
    backend = "embedded" if svc.db.embedded else "external"
    supervisor = svc.db.supervisor
    up = await supervisor.probe() if supervisor is not None else True
    database: dict[str, object] = {
        "status": "ok" if up else "down",
        "backend": backend,
        **(supervisor.report() if supervisor is not None else {}),
    }
    gpu = await svc.gpu_health()
    gpu["busy_by_kind"] = svc.scheduler.busy_slots()
    gpu["queued_demands"] = svc.scheduler.queued_demands()
    storage = await svc.store.health()
    scene = svc.scene.health()
    soundscape = svc.soundscape.health()
    parts: dict[str, object] = {
        "database": database,
        "storage": storage,
        "gpu": gpu,
        "scene": scene,
        "soundscape": soundscape,
        "policy": {a.name: a.policy for a in svc.scheduler.policies.arms},
        "auth": svc.gate.auth.describe(),
    }
    watched = {"database": database, "storage": storage, "gpu": gpu}
    if svc.settings.scene.backend != "offline":
        watched["scene"] = scene
    if svc.settings.soundscape.backend != "none":
        watched["soundscape"] = soundscape
    degraded = [name for name, part in watched.items() if part.get("status") != "ok"]
    return {
        "status": "degraded" if degraded else "healthy",
        "degraded_parts": degraded,
        **parts,
    }
