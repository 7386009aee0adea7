"""The GPU pool protocol: every backend (local CPU renderer, Modal + HY-WorldPlay) looks alike.

A pool has a fixed number of slots (one generation each: the seed's "1 concurrent request per
container"). ``generate`` is a coroutine; cancelling the awaiting task cancels the generation
(the backend frees or abandons the slot and, for remote backends, cancels the remote call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class GenerationError(RuntimeError):
    """A generation failed on the backend. ``transient`` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One chunk to generate.

    Attributes:
        job_id: the ``gpu_jobs`` row id (a UUID string); backends use it for logs and cancel.
        image_png: the input frame as PNG bytes (the photo for a root chunk, else the parent's
            last frame), already RGB.
        pose: canonical HY-WorldPlay pose string whose steps sum to latents - 1.
        frames: video frames to produce (125 by default).
        width, height: output size in pixels (854 x 480 by default).
        fps: frames per second of the MP4 (24).
        steps: inference steps (ignored by the local renderer).
        seed: generator seed.
        model: model variant.
        prompt: text prompt ("" when none).
        origin_png: the memory's photo, for backends that render every chunk from it (the local
            renderer, ``gpu.world``); None: render from ``image_png`` alone. HY-WorldPlay
            conditions on ``image_png`` and ignores it.
        history: poses of the chunk's ancestors, root first (empty for a root chunk): where the
            camera already is, for backends that use ``origin_png``.
    """

    job_id: str
    image_png: bytes
    pose: str
    frames: int = 125
    width: int = 854
    height: int = 480
    fps: int = 24
    steps: int = 30
    seed: int = 0
    model: str = "local-cpu"
    prompt: str = ""
    origin_png: bytes | None = None
    history: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """A finished chunk.

    Attributes:
        video_mp4: H.264 yuv420p MP4 bytes.
        last_frame_png: the last rendered frame as PNG bytes (the next chunk's input), taken from
            the frames the generator held, never by re-decoding the MP4.
        gpu_seconds: accelerator time billed for this generation, in GPU-seconds.
        frames, width, height: what was actually written.
        cold_start: whether the generation paid a container cold start.
        timings: named phases in seconds (e.g. {"render": 1.2, "encode": 0.8, "delay": 5.0}).
    """

    video_mp4: bytes
    last_frame_png: bytes
    gpu_seconds: float
    frames: int
    width: int
    height: int
    cold_start: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class GpuPool(Protocol):
    """A pool of GPU slots that turns GenerationRequests into GenerationResults."""

    name: str

    @property
    def slots(self) -> int:
        """Number of generations that may run at once."""
        ...

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate one chunk. Raises GenerationError; asyncio.CancelledError when cancelled."""
        ...

    async def health(self) -> dict[str, object]:
        """A JSON-ready health report (``status`` key: ok | degraded | not configured)."""
        ...

    async def close(self) -> None:
        """Release workers and connections."""
        ...
