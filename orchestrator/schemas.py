"""Request and response bodies of the HTTP API (the seed's shapes, plus speculation fields)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.scene import SceneInfo
from orchestrator.text import SafeText


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateMemory(_Strict):
    """POST /api/memories body (seed): a base64 photo and an optional prompt."""

    image_base64: str = Field(description="the photo, base64 (a data: URL prefix is accepted)")
    prompt: SafeText | None = Field(None, description="optional description of the memory")


class ChunkRequest(_Strict):
    """POST /api/memories/{id}/chunks body (seed): the parent chunk and a pose or an action."""

    parent_chunk_id: uuid.UUID
    pose: SafeText | None = Field(None, description="HY-WorldPlay pose, e.g. 'a-15, right-16'")
    action: SafeText | None = Field(None, description="an action such as 'w' or 'w+right'")
    session_id: uuid.UUID | None = Field(
        None, description="the viewer's session; default: the memory's latest session"
    )


class ChunkOut(BaseModel):
    """A chunk as the frontend sees it (seed fields first)."""

    chunk_id: uuid.UUID
    video_base64: str | None = None
    pose: str
    chunk_index: int
    parent_chunk_id: uuid.UUID | None = None
    action: str | None = None
    video_url: str
    last_frame_url: str
    outcome: str | None = Field(None, description="hit | inflight | miss")
    wait_ms: float | None = Field(None, description="request to ready, milliseconds")
    job_id: uuid.UUID | None = None


class MemoryCreated(BaseModel):
    """POST /api/memories response (seed shape, plus session_id and URLs)."""

    memory_id: uuid.UUID
    session_id: uuid.UUID
    policy: str = Field(description="speculation policy of the session's arm")
    arm: str = Field(description="A/B arm the session was assigned to")
    chunk: ChunkOut
    audio_base64: str | None = None
    audio_url: str | None = None
    scene: SceneInfo | None = None
    original_image_url: str


class ChunkCreated(BaseModel):
    """POST /api/memories/{id}/chunks response (seed shape)."""

    chunk: ChunkOut
    session_id: uuid.UUID | None = None


class TreeChunk(BaseModel):
    """One node of GET /api/memories/{id}'s chunk tree."""

    chunk_id: uuid.UUID
    parent_chunk_id: uuid.UUID | None
    pose: str
    action: str | None
    chunk_index: int
    status: str
    video_url: str | None


class MemoryOut(BaseModel):
    """GET /api/memories/{id} response (seed shape)."""

    memory_id: uuid.UUID
    original_image_url: str
    prompt: str | None
    scene: SceneInfo | None
    audio_url: str | None
    chunks: list[TreeChunk]


class SessionCreated(BaseModel):
    """POST /api/memories/{id}/sessions response."""

    session_id: uuid.UUID
    memory_id: uuid.UUID
    cursor_chunk_id: uuid.UUID
    policy: str
    arm: str
