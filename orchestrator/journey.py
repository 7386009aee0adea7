"""Journey replay: a session's chunk path stitched into one MP4, with the soundscape muxed in.

A session's ``chunk_path`` lists the chunks its viewer watched, in order (a cursor move appends).
``load_journey`` reads the ready ones; ``stitch`` joins their MP4s with ffmpeg (the binary that
``imageio-ffmpeg`` ships):

- **stream copy** (concat demuxer, ``-c copy``) when every chunk has the same codec, size,
  pixel format, frame rate and codec extradata (SPS/PPS): true for all chunks of one generation
  profile. Nothing is re-encoded, so this is fast and lossless.
- **re-encode** (concat filter, H.264) otherwise, e.g. when the service's profile changed during
  the walk: every chunk is scaled (letterboxed) to the first chunk's size and frame rate.

Frames: the journey holds every frame of every chunk, so its frame count is the sum of the
chunks' frame counts. A child's first frame continues from its parent's last frame (that is how
it was generated), so each junction shows the same view twice in a row, 1/24 s; dropping it
would need a re-encode (a chunk starts with its only keyframe), which stream copy avoids.

Audio: when the memory has a soundscape it is looped to the video's length and encoded as AAC;
the MP4 ends with the video.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import ApiError, Conflict, NotFound
from orchestrator.queries import Conn, query
from orchestrator.storage import BlobNotFound, BlobStore, Bucket

log = structlog.get_logger(__name__)

FFMPEG_TIMEOUT_S = 300.0
"""Longest a stitch may run before it is killed (a long journey re-encoded on a slow CPU)."""


@dataclass(frozen=True, slots=True)
class Journey:
    """What ``stitch`` needs: the session, its ready chunks in path order, and its soundscape.

    Attributes:
        video_keys: keys in bucket ``videos``, one per step of the path (repeats kept).
        audio_key: key in bucket ``audio``, or None when the memory has no soundscape.
        fps: the first chunk's frame rate (the re-encode target), from its profile.
    """

    session_id: uuid.UUID
    memory_id: uuid.UUID
    chunk_ids: tuple[uuid.UUID, ...]
    video_keys: tuple[str, ...]
    audio_key: str | None
    fps: int


class JourneyFailed(ApiError):
    """500: ffmpeg could not stitch the chunks (a server fault; details are logged)."""

    def __init__(self, detail: str) -> None:
        super().__init__(500, "journey_failed", detail, field=None)


async def load_journey(conn: Conn, session_id: uuid.UUID) -> Journey:
    """The session's journey: its ready chunks in path order and its memory's soundscape.

    Raises:
        NotFound: no such session.
        Conflict (409 ``journey_empty``): the session's path has no ready chunk yet.
    """
    session = await conn.fetchrow(query("journey_session"), session_id)
    if session is None:
        raise NotFound(f"no session {session_id}", field="session_id")
    rows = await conn.fetch(query("journey_chunks"), session_id)
    if not rows:
        raise Conflict(
            "journey_empty",
            f"session {session_id} has no ready chunk on its path yet; "
            "ask again once its first chunk has been served",
            field="session_id",
        )
    profile: dict[str, Any] = rows[0]["profile"] or {}
    return Journey(
        session_id=session_id,
        memory_id=session["memory_id"],
        chunk_ids=tuple(r["id"] for r in rows),
        video_keys=tuple(r["video_path"] for r in rows),
        audio_key=session["audio_path"],
        fps=int(profile.get("fps") or 24),
    )


async def stitch_journey(store: BlobStore, journey: Journey, workdir: Path) -> Path:
    """Write the journey's MP4 into ``workdir`` (a fresh folder the caller removes) and return it.

    Blobs a remote store holds are downloaded into ``workdir``; local ones are read in place.

    Raises:
        NotFound: a chunk's video or the soundscape is missing from storage.
        JourneyFailed: ffmpeg failed or timed out.
    """
    inputs: list[Path] = []
    cache: dict[str, Path] = {}
    for key in journey.video_keys:
        if key not in cache:
            cache[key] = await _materialise(store, "videos", key, workdir / f"v{len(cache)}.mp4")
        inputs.append(cache[key])
    audio: Path | None = None
    if journey.audio_key is not None:
        suffix = Path(journey.audio_key).suffix or ".mp3"
        audio = await _materialise(store, "audio", journey.audio_key, workdir / f"audio{suffix}")
    out = workdir / "journey.mp4"
    await stitch(inputs, out, audio=audio, fps=journey.fps)
    return out


async def _materialise(store: BlobStore, bucket: Bucket, key: str, dest: Path) -> Path:
    local = store.local_path(bucket, key)
    if local is not None and local.exists():
        return local
    try:
        data = await store.get(bucket, key)
    except BlobNotFound as exc:
        raise NotFound(f"{bucket}/{key} is missing from storage") from exc
    await asyncio.to_thread(dest.write_bytes, data)
    return dest


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The facts of an MP4's first video stream that decide whether stream copy is safe."""

    codec: str
    width: int
    height: int
    pix_fmt: str
    rate: str
    extradata: bytes


def probe_video(path: Path) -> StreamInfo:
    """Read the first video stream's parameters (PyAV; blocking, run it in a thread).

    Raises:
        ValueError: the file has no video stream.
    """
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path.name} has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        return StreamInfo(
            codec=str(ctx.name),
            width=int(ctx.width),
            height=int(ctx.height),
            pix_fmt=str(ctx.pix_fmt),
            rate=str(stream.average_rate),
            extradata=bytes(ctx.extradata or b""),
        )


def can_stream_copy(infos: list[StreamInfo]) -> bool:
    """True when every stream matches the first exactly (same decoder setup): concat -c copy."""
    return all(info == infos[0] for info in infos[1:])


async def stitch(
    inputs: list[Path], out: Path, *, audio: Path | None = None, fps: int = 24
) -> bool:
    """Concatenate ``inputs`` (MP4s, in order) into ``out``, muxing ``audio`` (looped) if given.

    Returns:
        True when the video was stream-copied, False when it had to be re-encoded.

    Raises:
        ValueError: no inputs.
        JourneyFailed: ffmpeg exited with an error or ran longer than ``FFMPEG_TIMEOUT_S``.
    """
    if not inputs:
        raise ValueError("nothing to stitch")
    # Absolute paths: ffmpeg resolves a concat list's relative entries against the list's own
    # folder, not the working directory, so the default relative data folder (.rewind/) broke.
    inputs = [p.resolve() for p in inputs]
    infos = await asyncio.to_thread(lambda: [probe_video(p) for p in inputs])
    copy = can_stream_copy(infos)
    workdir = out.parent
    args: list[str] = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    if copy:
        listing = workdir / "concat.txt"
        listing.write_text("".join(f"file {_concat_quote(p)}\n" for p in inputs))
        args += ["-f", "concat", "-safe", "0", "-i", str(listing)]
    else:
        for p in inputs:
            args += ["-i", str(p)]
    audio_index = 1 if copy else len(inputs)
    if audio is not None:
        args += ["-stream_loop", "-1", "-i", str(audio.resolve())]
    if copy:
        args += ["-map", "0:v:0", "-c:v", "copy"]
    else:
        w, h = infos[0].width, infos[0].height
        chains = [
            f"[{i}:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[v{i}]"
            for i in range(len(inputs))
        ]
        joined = "".join(f"[v{i}]" for i in range(len(inputs)))
        graph = ";".join([*chains, f"{joined}concat=n={len(inputs)}:v=1:a=0[v]"])
        args += ["-filter_complex", graph, "-map", "[v]"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    if audio is not None:
        args += ["-map", f"{audio_index}:a:0", "-c:a", "aac", "-b:a", "128k", "-shortest"]
    args += ["-movflags", "+faststart", str(out)]
    await _ffmpeg(args)
    log.info("journey_stitched", chunks=len(inputs), stream_copy=copy, audio=audio is not None)
    return copy


def _concat_quote(path: Path) -> str:
    # ffconcat syntax: single-quoted, a quote written as '\''.
    return "'" + str(path).replace("'", "'\\''") + "'"


async def _ffmpeg(args: list[str]) -> None:
    import imageio_ffmpeg

    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    proc = await asyncio.create_subprocess_exec(
        exe,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), FFMPEG_TIMEOUT_S)
    except TimeoutError:
        await _kill(proc)
        log.error("journey_ffmpeg_timeout", timeout_s=FFMPEG_TIMEOUT_S)
        raise JourneyFailed(f"stitching took longer than {FFMPEG_TIMEOUT_S:.0f} s") from None
    except asyncio.CancelledError:  # the client went away: stop ffmpeg, stay cancelled
        await _kill(proc)
        raise
    if proc.returncode != 0:
        tail = stderr.decode(errors="replace")[-2000:]
        log.error("journey_ffmpeg_failed", returncode=proc.returncode, stderr=tail)
        raise JourneyFailed(f"ffmpeg could not stitch the journey (exit {proc.returncode})")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
