"""Carrying out one generation: input frame in, MP4 and last frame stored, rows updated.

Each attempt is its own ``gpu_jobs`` row. A demand job whose attempt fails with a transient
GenerationError is tried again with exponential back-off (tenacity); a speculative job is never
retried blindly (the planner decides again whether it is still worth it). The blobs are written
and fsynced before the chunk row says ``ready``, in one transaction with the job row, so a crash
at any point leaves either a ready chunk with its files or a pending one that start-up recovery
generates again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import cast

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from gpu.protocol import GenerationError, GenerationRequest, GenerationResult, GpuPool
from orchestrator import repo
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.prompt import FALLBACK_PROMPT, chunk_prompt
from orchestrator.core.types import JobKind
from orchestrator.db import Database
from orchestrator.errors import ApiError
from orchestrator.queries import Conn, query
from orchestrator.storage import BlobStore, frame_key, original_key, video_key

log = structlog.get_logger(__name__)


class GenerationFailed(ApiError):
    """502: the chunk could not be generated; ``job_id`` names the last attempt."""

    def __init__(self, job_id: str, chunk_id: str, reason: str) -> None:
        super().__init__(
            502,
            "generation_failed",
            f"generating chunk {chunk_id} failed in job {job_id}: {reason}",
        )
        self.job_id = job_id
        self.chunk_id = chunk_id

    def to_json(self) -> dict[str, object]:
        """The error body plus ``job_id`` and ``chunk_id``."""
        return {**super().to_json(), "job_id": self.job_id, "chunk_id": self.chunk_id}


@dataclass
class ActiveJob:
    """A generation the scheduler has started (mutable: attempts change ``job_id``).

    ``started_at`` is on the scheduler's monotonic clock (seconds); ``expected_gpu_s`` is the
    GPU-seconds estimate the core charged for it.
    """

    chunk_id: uuid.UUID
    memory_id: uuid.UUID
    parent_id: uuid.UUID | None
    pose: str
    action: str | None
    kind: JobKind
    session_id: uuid.UUID | None
    policy: str | None
    arm: str | None
    probability: float
    depth: int
    expected_gpu_s: float
    started_at: float
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    cancel_reason: str | None = None
    attempts: int = 0
    initial_kind: JobKind = "demand"
    # A remote call (Modal FunctionCall id) a previous process started for this chunk: the
    # first attempt re-attaches to it instead of paying for the generation again.
    resume_call_id: str | None = None
    # Set once the attempt's gpu_jobs row exists: rows that reference the job wait for it.
    row_written: asyncio.Event = field(default_factory=asyncio.Event)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, GenerationError) and exc.transient


class JobRunner:
    """Runs ActiveJobs on a GPU pool, storing results in the blob store and the database."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        pool: GpuPool,
        profile: GenerationProfile,
        *,
        demand_retries: int = 2,
        retry_wait_s: float = 1.0,
        usd_per_gpu_s: float = 0.0,
    ) -> None:
        self.db = db
        self.store = store
        self.pool = pool
        self.profile = profile
        self.demand_retries = demand_retries
        self.retry_wait_s = retry_wait_s
        self.usd_per_gpu_s = usd_per_gpu_s

    async def input_frame(self, memory_id: uuid.UUID, parent_id: uuid.UUID | None) -> bytes:
        """The PNG a chunk starts from: the photo for the root, else the parent's last frame."""
        if parent_id is None:
            return await self.store.get("originals", original_key(str(memory_id)))
        return await self.store.get("frames", frame_key(str(memory_id), str(parent_id)))

    async def world_inputs(
        self, job: ActiveJob, image: bytes, conn: Conn
    ) -> tuple[bytes | None, tuple[str, ...]]:
        """The memory's photo and the ancestors' poses (root first), for a pool that renders
        every chunk from the photo (``renders_from_origin``, the local one); else ``(None, ())``.

        ``image`` is the chunk's input frame (for a root chunk: the photo itself); ``conn`` is
        the connection the attempt already holds.
        """
        if not getattr(self.pool, "renders_from_origin", False):
            return None, ()
        if job.parent_id is None:
            return image, ()
        rows = await conn.fetch(query("chunk_ancestor_poses"), job.parent_id)
        origin = await self.store.get("originals", original_key(str(job.memory_id)))
        return origin, tuple(str(r["pose"]) for r in rows)

    async def run(self, job: ActiveJob) -> tuple[GenerationResult, float]:
        """Generate and store ``job``'s chunk; return the result and wall seconds it took.

        Raises:
            GenerationFailed: every allowed attempt failed (rows say why).
            asyncio.CancelledError: cancelled; the caller records the cancellation.
        """
        image = await self.input_frame(job.memory_id, job.parent_id)
        tries = 1 + (self.demand_retries if job.kind == "demand" else 0)
        started = time.monotonic()
        last_error = "no attempt ran"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(tries),
            wait=wait_exponential(multiplier=self.retry_wait_s, max=30),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if job.attempts > 0:  # a retry is a new gpu_jobs row
                        job.job_id = uuid.uuid4()
                        job.row_written.clear()
                        try:
                            async with self.db.pool.acquire() as conn:
                                await self.insert_attempt(conn, job)
                        finally:
                            job.row_written.set()
                    job.attempts += 1
                    result = await self._attempt(job, image)
        except GenerationError as exc:
            last_error = str(exc)
            raise GenerationFailed(str(job.job_id), str(job.chunk_id), last_error) from exc
        return result, time.monotonic() - started

    async def insert_attempt(self, conn: Conn, job: ActiveJob) -> None:
        """Insert the queued gpu_jobs row of ``job``'s current attempt."""
        await repo.insert_job(
            conn,
            job_id=job.job_id,
            chunk_id=job.chunk_id,
            memory_id=job.memory_id,
            session_id=job.session_id,
            kind=job.kind,
            backend=self.pool.name,
            policy=job.policy,
            probability=job.probability,
            depth=job.depth,
            arm=job.arm,
        )

    async def prompt_for(self, job: ActiveJob) -> str:
        """The chunk's text prompt (``orchestrator.core.prompt``): the user's, else the scene
        description for chunks after the root, else the fallback. Read per attempt, so a retry
        after scene analysis finished gets the description."""
        async with self.db.pool.acquire() as conn:
            row = await repo.get_memory(conn, job.memory_id)
        user = row["prompt"] if row is not None else None
        scene = row["scene_description"] if row is not None else None
        prompt = chunk_prompt(
            user_prompt=user,
            scene_description=scene,
            is_root=job.parent_id is None,
            profile_prompt=self.profile.prompt,
        )
        if prompt == FALLBACK_PROMPT and job.parent_id is not None:
            log.info("chunk_prompt_fallback", chunk_id=str(job.chunk_id), reason="no scene yet")
        return prompt

    async def _attempt(self, job: ActiveJob, image: bytes) -> GenerationResult:
        async with self.db.pool.acquire() as conn:
            await repo.start_job(conn, job.job_id)
            # On the same connection, after the row says running: no second wait for the pool.
            origin, history = await self.world_inputs(job, image, conn)
        p = self.profile
        prompt = await self.prompt_for(job)
        request = GenerationRequest(
            job_id=str(job.job_id),
            image_png=image,
            pose=job.pose,
            frames=p.frames,
            width=p.width,
            height=p.height,
            fps=p.fps,
            steps=p.steps,
            seed=p.seed,
            model=p.model,
            prompt=prompt,
            origin_png=origin,
            history=history,
        )
        t0 = time.monotonic()
        resume = getattr(self.pool, "resume", None)
        call_id, job.resume_call_id = job.resume_call_id, None
        try:
            if call_id is not None and resume is not None:
                log.info("job_reattached", job_id=str(job.job_id), call_id=call_id)
                result = cast(GenerationResult, await resume(request, call_id))
            else:
                result = await self.pool.generate(request)
        except GenerationError as exc:
            async with self.db.pool.acquire() as conn:
                await repo.job_ended(
                    conn,
                    job.job_id,
                    "failed",
                    error=str(exc),
                    gpu_seconds=time.monotonic() - t0,
                    usd_per_gpu_s=self.usd_per_gpu_s,
                )
            log.warning(
                "job_attempt_failed",
                job_id=str(job.job_id),
                error=str(exc),
                transient=exc.transient,
            )
            raise
        await self._store(job, result)
        return result

    async def _store(self, job: ActiveJob, result: GenerationResult) -> None:
        memory, chunk = str(job.memory_id), str(job.chunk_id)
        vkey, fkey = video_key(memory, chunk), frame_key(memory, chunk)
        await self.store.put("videos", vkey, result.video_mp4, "video/mp4")
        await self.store.put("frames", fkey, result.last_frame_png, "image/png")
        async with self.db.pool.acquire() as conn, conn.transaction():
            await repo.mark_chunk_ready(conn, job.chunk_id, vkey, fkey, len(result.video_mp4))
            await repo.job_succeeded(
                conn, job.job_id, result.gpu_seconds, result.cold_start, self.usd_per_gpu_s
            )
