"""Soundscape: ambient audio for a memory, generated from its scene.

Production uses ElevenLabs sound effects; the embedded default is ``NoSoundscape``, which
produces nothing and says so in ``/api/health`` rather than returning fake audio (the API then
answers ``"audio_base64": null``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.scene import SceneInfo


@dataclass(frozen=True, slots=True)
class Audio:
    """A generated ambience clip.

    Attributes:
        data: the encoded audio file, bytes (e.g. an MP3).
        content_type: its MIME type, e.g. "audio/mpeg"; stored with the blob in the ``audio``
            bucket.
        duration_s: playing time in seconds.
    """

    data: bytes = field(repr=False)
    content_type: str
    duration_s: float


class Soundscape(Protocol):
    """Turns a scene (its ``sound_keywords`` above all) into ambient audio."""

    name: str

    async def generate(self, scene: SceneInfo) -> Audio | None:
        """Audio for ``scene``, or None when this backend produces no audio by design."""
        ...

    def health(self) -> dict[str, object]:
        """Status for ``/api/health``, e.g. {"status": "ok", "backend": "elevenlabs"}."""
        ...


class NoSoundscape:
    """The embedded default: no audio. Memories are created with ``audio_base64`` null."""

    name: str = "none"

    async def generate(self, scene: SceneInfo) -> Audio | None:
        """Always None; never raises."""
        return None

    def health(self) -> dict[str, object]:
        """Reports "not configured" so operators see why audio is missing."""
        return {
            "status": "not configured",
            "backend": "none",
            "detail": "no soundscape backend configured; audio_base64 will be null",
        }
