"""Memory creation and chunk requests: the seed's flows on top of the scheduler.

Creating a memory validates the photo before anything is written, then stores the normalised
photo, inserts the memory, its root chunk claim and a session, and runs scene analysis, the root
chunk and the soundscape concurrently (seed: "Backend Internal Flow"). A failed scene analysis or
soundscape leaves its field null; a failed root chunk is a 502 naming the job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import uuid
from dataclasses import dataclass

import structlog

from orchestrator import repo
from orchestrator.auth import Principal
from orchestrator.backends import ExternalCall, metered
from orchestrator.core.poses import PoseError, action_to_pose, canonical_pose, normalize_action
from orchestrator.core.poses import pose_to_action as _pose_action
from orchestrator.errors import Conflict, InvalidInput, NotFound
from orchestrator.experiments import Arm
from orchestrator.media import decode_photo
from orchestrator.queries import Conn
from orchestrator.scene import SceneInfo
from orchestrator.scheduler import ServedChunk
from orchestrator.service import Service
from orchestrator.soundscape import Audio
from orchestrator.storage import audio_key, original_key

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CreatedMemory:
    """What POST /api/memories returns before serialisation."""

    memory_id: uuid.UUID
    session_id: uuid.UUID
    arm: Arm
    served: ServedChunk
    scene: SceneInfo | None
    audio: Audio | None


def resolve_pose(pose: str | None, action: str | None, frames: int) -> tuple[str, str | None]:
    """(canonical pose, action or None) from a request naming exactly one of pose / action.

    Raises:
        InvalidInput: neither or both given, or the pose/action breaks a rule.
    """
    if (pose is None) == (action is None):
        raise InvalidInput(
            "invalid_pose",
            'send exactly one of \'pose\' (e.g. "w-31") or \'action\' (e.g. "w" or "w+right")',
            field="pose",
        )
    try:
        return _resolved(pose, action, frames)
    except PoseError as exc:
        raise InvalidInput(f"invalid_{exc.field}", exc.rule, field=exc.field) from exc


@functools.lru_cache(maxsize=4096)
def _resolved(pose: str | None, action: str | None, frames: int) -> tuple[str, str | None]:
    """``resolve_pose``'s answer, memoised: every step re-parsed and re-built the same few
    dozen poses (1-2.7 % of a cache hit's CPU). Bounded, so arbitrary client strings cannot
    grow it; a ``PoseError`` is raised again each time (``lru_cache`` keeps only returns)."""
    if action is not None:
        name = normalize_action(action)
        return str(action_to_pose(name, frames)), name
    assert pose is not None
    canonical = canonical_pose(pose, frames)
    return canonical, _pose_action(canonical, frames)


async def create_memory(
    svc: Service, image_base64: str, prompt: str | None, owner: uuid.UUID | None = None
) -> CreatedMemory:
    """Validate the photo, write the memory and its first session (both owned by ``owner``),
    and generate its root chunk, scene and audio.

    Raises:
        InvalidInput / TooLarge: the photo or prompt breaks a rule (nothing is written).
        GenerationFailed: the root chunk could not be generated (502).
    """
    limits = svc.settings.limits
    if prompt is not None and len(prompt) > limits.max_prompt_chars:
        raise InvalidInput(
            "prompt_too_long",
            f"prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars}",
            field="prompt",
        )
    photo = await asyncio.to_thread(
        decode_photo,
        image_base64,
        max_bytes=limits.max_image_bytes,
        max_pixels=limits.max_image_pixels,
    )
    memory_id, session_id, root_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    arm = svc.scheduler.policies.assign(session_id)
    image_path = original_key(str(memory_id))
    await svc.store.put("originals", image_path, photo.png, "image/png")
    try:
        async with svc.db.pool.acquire() as conn, conn.transaction():
            await repo.insert_memory(
                conn, memory_id, prompt, image_path, photo.width, photo.height, owner
            )
            root, _ = await repo.claim_chunk(
                conn,
                chunk_id=root_id,
                memory_id=memory_id,
                parent_id=None,
                chunk_index=0,
                pose=svc.root_pose,
                action=_pose_action(svc.root_pose, svc.profile.frames),
                profile_key=svc.profile.key(),
                profile=svc.profile.to_json(),
            )
            await repo.insert_session(
                conn, session_id, memory_id, root["id"], arm.policy, arm.name, owner
            )
    except BaseException:
        await svc.store.delete("originals", image_path)
        local = svc.store.local_path("originals", image_path)
        if local is not None:  # no empty originals/<id>/ folder is left behind
            with contextlib.suppress(OSError):
                local.parent.rmdir()
        raise
    svc.gate.ownership.remember_memory(memory_id, owner, False)
    svc.gate.ownership.remember_session(session_id, owner, memory_id)
    svc.gate.usage.note_session(session_id, owner)
    await svc.scheduler.open_session(session_id, memory_id, root["id"], arm.name)

    async def scene_then_audio() -> tuple[SceneInfo | None, Audio | None]:
        scene = await _analyse(svc, memory_id, photo.png, prompt)
        audio = await _soundscape(svc, memory_id, scene) if scene is not None else None
        return scene, audio

    side = asyncio.create_task(scene_then_audio())
    try:
        served = await svc.scheduler.request_chunk(
            memory_id=memory_id,
            parent_id=None,
            pose=svc.root_pose,
            action=None,
            session_id=session_id,
            record_history=False,
        )
    finally:
        scene, audio = await side
    return CreatedMemory(memory_id, session_id, arm, served, scene, audio)


async def _analyse(
    svc: Service, memory_id: uuid.UUID, png: bytes, prompt: str | None
) -> SceneInfo | None:
    with metered() as calls:
        try:
            scene = await svc.scene.analyze(png, prompt)
        except Exception as exc:
            log.warning(
                "scene_analysis_failed",
                memory_id=str(memory_id),
                backend=svc.scene.name,
                error=str(exc),
            )
            return None
        finally:
            await _record_costs(svc, memory_id, calls)
    async with svc.db.pool.acquire() as conn:
        await repo.set_memory_scene(
            conn,
            memory_id,
            scene.description,
            scene.mood,
            [a.model_dump() for a in scene.anchor_points],
            scene.sound_keywords,
            svc.scene.name,
        )
    return scene


async def _soundscape(svc: Service, memory_id: uuid.UUID, scene: SceneInfo) -> Audio | None:
    with metered() as calls:
        try:
            audio = await svc.soundscape.generate(scene)
        except Exception as exc:
            log.warning(
                "soundscape_failed",
                memory_id=str(memory_id),
                backend=svc.soundscape.name,
                error=str(exc),
            )
            return None
        finally:
            await _record_costs(svc, memory_id, calls)
    if audio is None:
        return None
    ext = "mp3" if audio.content_type == "audio/mpeg" else "wav"
    key = audio_key(str(memory_id), ext)
    await svc.store.put("audio", key, audio.data, audio.content_type)
    async with svc.db.pool.acquire() as conn:
        await repo.set_memory_audio(conn, memory_id, key, audio.content_type)
    return audio


async def _record_costs(svc: Service, memory_id: uuid.UUID, calls: list[ExternalCall]) -> None:
    """Write one memory_costs row per billed call; a failure is logged (the memory stands)."""
    if not calls:
        return
    try:
        async with svc.db.pool.acquire() as conn, conn.transaction():
            for call in calls:
                await repo.insert_memory_cost(
                    conn,
                    memory_id,
                    kind=call.kind,
                    backend=call.backend,
                    model=call.model,
                    units=call.units,
                    quantity=call.quantity,
                    usd=call.usd,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    characters=call.characters,
                )
    except Exception as exc:
        log.error("cost_record_failed", memory_id=str(memory_id), error=str(exc))


async def request_next_chunk(
    svc: Service,
    memory_id: uuid.UUID,
    parent_id: uuid.UUID,
    pose: str | None,
    action: str | None,
    session_id: uuid.UUID | None,
    principal: Principal | None = None,
) -> tuple[ServedChunk, uuid.UUID | None]:
    """Validate ids and pose, then serve the chunk (hit, in-flight hit or miss).

    Ids are checked against the live state (the memory's tree is loaded once) and the
    ownership cache, so a hit on a live session costs no database round trip.
    ``principal`` None is a trusted in-process caller (the demo). Otherwise the memory must be
    readable by the caller (own or shared) and the session theirs; with no ``session_id`` the
    caller's latest session on the memory is used (an operator: the memory's latest).

    Raises:
        NotFound: unknown memory, parent chunk, or session (or one from another memory, or
            one the caller may not see: the same answer).
        Conflict: the parent chunk is not ready yet; ``session_required`` when the caller has
            no session on a memory shared with them.
        InvalidInput: bad pose/action.
        GenerationFailed: generation failed (502 with the job id).
    """
    canonical, action_name = resolve_pose(pose, action, svc.profile.frames)
    sched, own, pool = svc.scheduler, svc.gate.ownership, svc.db.pool
    if principal is not None:
        await own.readable_memory(pool, principal, memory_id)
    if not await sched.ensure_memory(memory_id):
        raise NotFound(f"no memory {memory_id}", field="memory_id")
    parent = sched.node(memory_id, parent_id)
    if parent is None or parent.state != "ready":
        parent = await sched.refresh_node(memory_id, parent_id)  # a replica's view may trail
    if parent is None:
        raise NotFound(f"no chunk {parent_id} in memory {memory_id}", field="parent_chunk_id")
    if session_id is None and principal is not None and not principal.is_operator:
        async with pool.acquire() as conn:
            session_id = await _default_session(conn, principal, memory_id)
    if session_id is not None and principal is not None:
        access = await own.own_session(pool, principal, session_id)
        if access.memory_id != memory_id:
            raise NotFound(f"no session {session_id} on memory {memory_id}", field="session_id")
    if parent.state != "ready":
        raise Conflict(
            "parent_not_ready",
            f"chunk {parent_id} is {parent.state}, not ready; request "
            "its children once it has been served",
            field="parent_chunk_id",
        )
    try:
        session_id = await sched.resolve_session(memory_id, session_id)
    except LookupError as exc:
        raise NotFound(str(exc), field="session_id") from exc
    if session_id is not None and principal is not None and not principal.is_operator:
        svc.gate.usage.note_session(session_id, principal.user_id)
    served = await sched.request_chunk(
        memory_id=memory_id,
        parent_id=parent_id,
        pose=canonical,
        action=action_name,
        session_id=session_id,
    )
    return served, session_id


async def _default_session(
    conn: Conn, principal: Principal | None, memory_id: uuid.UUID
) -> uuid.UUID | None:
    """The session a request naming none walks in: the caller's latest on the memory."""
    if principal is None or principal.is_operator:
        latest = await repo.latest_session(conn, memory_id)
        return latest["id"] if latest is not None else None
    assert principal.user_id is not None  # only the operator token has no user
    mine = await repo.latest_session_of_user(conn, memory_id, principal.user_id)
    if mine is None:  # a viewer of a shared memory must walk in a session of their own
        raise Conflict(
            "session_required",
            f"you have no session on memory {memory_id}: open one with "
            f"POST /api/memories/{memory_id}/sessions and send its session_id",
            field="session_id",
        )
    return uuid.UUID(str(mine["id"]))


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")
