"""Generation profile and chunk key: what makes two chunks the same.

A chunk is identified by (memory, parent chunk, canonical pose, generation profile). The profile
holds everything that changes the pixels: frames, size, fps, inference steps, seed, model variant
and prompt. Two requests that agree on all four parts share one chunk and one generation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class GenerationProfile:
    """Everything that changes a chunk's pixels.

    Attributes:
        frames: video frames per chunk; 125 by default (HY-WorldPlay, seed: ~5.2 s at 24 fps).
        width: output width in pixels (480p: 854, seed "SR disabled").
        height: output height in pixels (480).
        fps: frames per second (24, seed).
        steps: diffusion inference steps (30 in the seed's regime).
        seed: generator seed.
        model: model variant name, e.g. "hy-worldplay" or "local-cpu".
        prompt: text prompt given to the model ("" when none).
    """

    frames: int = 125
    width: int = 854
    height: int = 480
    fps: int = 24
    steps: int = 30
    seed: int = 0
    model: str = "local-cpu"
    prompt: str = ""

    @property
    def duration_s(self) -> float:
        """Playback length of one chunk in seconds (frames / fps)."""
        return self.frames / self.fps

    def key(self) -> str:
        """Stable 16-hex-digit digest of the profile, stored in the chunk key column."""
        blob = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, object]:
        """The profile as a JSON-ready dict (stored on the chunk row)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ChunkKey:
    """The identity of a chunk: memory, parent chunk (None for the root), canonical pose, profile.

    ``pose`` must already be canonical (see ``orchestrator.core.poses``); ``profile_key`` is
    ``GenerationProfile.key()``.
    """

    memory_id: str
    parent_chunk_id: str | None
    pose: str
    profile_key: str
