"""Sharp walks: every chunk rendered from the memory's photo with the camera accumulated along
the path, instead of zooming into the previous chunk's last frame.

``gpu.render.render_chunk`` warps its input frame, as HY-WorldPlay conditions on it. Done chunk
after chunk on the CPU, that resamples the same pixels again and again: after 3-4 forward steps
the view is a flat blur. Here the local renderer keeps the photo as a *canvas* and knows where the
camera is after every step of every ancestor chunk (the ``history`` poses, root first), so the
frame of any step is one resample of the photo. The chunk's last frame is still stored and
returned as its children's input (the seed's contract); it equals the camera's view at the end of
the chunk, so a child's first frame is its parent's last frame, pixel for pixel.

Camera (the ``gpu.render`` photo-wall model, made bounded so that no walk leaves the photo's
detail behind):

- The canvas is the photo cover-cropped to ``k * width x k * height``, where ``k`` is the
  photo's resolution over the output's (cover-crop ratio) within ``1..MAX_ZOOM``: zooming in up
  to ``k`` reads real pixels of the photo, not interpolated ones. Beyond its edges the canvas is
  extended by mirroring (texture, no seam).
- ``w``/``s`` move the camera 0.08 units towards/away from the wall at the start (HY-WorldPlay),
  slowing as the distance approaches its bounds ``WALL_DISTANCE / zoom_limit`` and
  ``WALL_DISTANCE / MIN_ZOOM`` (each step covers the same fraction of the remaining way), so the
  zoom stays within ``MIN_ZOOM..zoom_limit`` however long one walks, and every step still moves.
  ``zoom_limit`` is the photo's own detail, ``k``, but at least ``MIN_ZOOM_LIMIT`` (so a small
  photo can still be approached a little) and at most ``MAX_ZOOM``.
- ``a``/``d`` strafe and ``left``/``right`` yaw as in ``gpu.render`` (unbounded: the mirrored
  canvas is defined everywhere); ``up``/``down`` pitch 3 degrees a step within
  ``+-PITCH_LIMIT_DEG`` (a person looks up or down only so far).
- Parallax (depth layers) is not modelled: the photo is one plane.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from gpu.render import (
    FRAMES_PER_LATENT,
    STEP_ROTATION_DEG,
    STEP_TRANSLATION,
    WALL_DISTANCE,
    Camera,
    RenderOutput,
    camera_at,
    encode_chunk,
    focal_length,
    validate_profile,
)
from orchestrator.core.poses import parse_pose

MAX_ZOOM = 2.0
"""Closest view: 2x the root chunk's scale (the canvas holds up to 2x the output's pixels)."""
MIN_ZOOM_LIMIT = 1.25
"""Closest view of a photo with no more pixels than the output: 1.25x (mildly interpolated)."""
MIN_ZOOM = 0.5
"""Farthest view: half the root chunk's scale."""
PITCH_LIMIT_DEG = 45.0
"""How far up or down the camera may look, in degrees from level."""
MAX_HISTORY_STEPS = 100_000
"""Most ancestor latent steps accepted (a walk of ~3,200 chunks of 31 steps)."""

_MARGIN = 2
_D_FAR = WALL_DISTANCE / MIN_ZOOM
_SEGMENT = re.compile(r"\s*([a-z]+)\s*-\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class WorldCamera:
    """The bounded camera after some steps: ``Camera`` (photo px, world units) plus pitch.

    ``pitch_deg`` is degrees above level (negative: looking down).
    """

    camera: Camera
    pitch_deg: float = 0.0


def start_camera(width: int, height: int) -> WorldCamera:
    """The root chunk's first camera: level, centred, ``WALL_DISTANCE`` from the photo."""
    return WorldCamera(Camera(width / 2, height / 2, WALL_DISTANCE))


def zoom_limit(detail: float) -> float:
    """Closest zoom for a photo with ``detail`` photo pixels per output pixel (cover-crop)."""
    return max(MIN_ZOOM_LIMIT, min(MAX_ZOOM, detail))


def step(cam: WorldCamera, action: str, width: int, max_zoom: float = MAX_ZOOM) -> WorldCamera:
    """The camera after one latent step of ``action`` (one of ``gpu.render``'s actions). Pure.

    ``max_zoom`` bounds the zoom (``zoom_limit``); ``MIN_ZOOM`` bounds zooming out.

    Raises:
        ValueError: unknown action.
    """
    c, pitch = cam.camera, cam.pitch_deg
    x, y, dist = c.x, c.y, c.distance
    focal = focal_length(width)
    turn = focal * math.radians(STEP_ROTATION_DEG) / c.scale  # photo px per rotation step
    strafe = STEP_TRANSLATION * focal / WALL_DISTANCE
    near = WALL_DISTANCE / max_zoom
    if action == "w":
        dist -= STEP_TRANSLATION * max(0.0, dist - near) / (WALL_DISTANCE - near)
    elif action == "s":
        dist += STEP_TRANSLATION * (_D_FAR - dist) / (_D_FAR - WALL_DISTANCE)
    elif action in ("d", "a"):
        x += strafe if action == "d" else -strafe
    elif action in ("right", "left"):
        x += turn if action == "right" else -turn
    elif action in ("up", "down"):
        sign = 1.0 if action == "up" else -1.0
        new_pitch = max(-PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, pitch + sign * STEP_ROTATION_DEG))
        y -= turn * (new_pitch - pitch) / STEP_ROTATION_DEG
        pitch = new_pitch
    else:
        raise ValueError(f"unknown action {action!r}")
    return WorldCamera(Camera(x, y, dist), pitch)


def pose_actions(pose: str) -> tuple[str, ...]:
    """One action per latent step of a stored pose string (any step total).

    Raises:
        PoseError: the pose is malformed.
    """
    total = sum(int(n) for _, n in _SEGMENT.findall(pose.lower()))
    return parse_pose(pose, FRAMES_PER_LATENT * max(total, 1) + 1).step_actions()


def world_path(
    history: Sequence[str],
    pose: str,
    frames: int,
    width: int,
    height: int,
    max_zoom: float = MAX_ZOOM,
) -> tuple[Camera, ...]:
    """Cameras at latent steps 0..n of ``pose``, starting where ``history`` (root first) ended.

    ``max_zoom``: the closest zoom (``zoom_limit`` of the photo).

    Raises:
        PoseError: a pose is malformed or ``pose`` does not fit ``frames``.
        ValueError: the history is longer than ``MAX_HISTORY_STEPS``.
    """
    cam = start_camera(width, height)
    walked = 0
    for past in history:
        actions = pose_actions(past)
        walked += len(actions)
        if walked > MAX_HISTORY_STEPS:
            raise ValueError(f"history longer than {MAX_HISTORY_STEPS} latent steps")
        for action in actions:
            cam = step(cam, action, width, max_zoom)
    path = [cam.camera]
    for action in parse_pose(pose, frames).step_actions():
        cam = step(cam, action, width, max_zoom)
        path.append(cam.camera)
    return tuple(path)


@lru_cache(maxsize=4)
def _canvas_cached(
    digest: str, image_png: bytes, width: int, height: int
) -> tuple[Image.Image, float]:
    del digest  # part of the cache key only
    try:
        with Image.open(io.BytesIO(image_png)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"origin_png is not a decodable image: {exc}") from exc
    # A cover crop scales the photo so that its relatively shorter side fills the output.
    detail = min(rgb.width / width, rgb.height / height)
    k = max(1.0, min(MAX_ZOOM, detail))
    size = (round(width * k), round(height * k))
    return ImageOps.fit(rgb, size, method=Image.Resampling.LANCZOS), detail


def canvas(image_png: bytes, width: int, height: int) -> tuple[Image.Image, float]:
    """The photo cover-cropped to ``k * width x k * height`` (``1 <= k <= MAX_ZOOM``), and its
    detail: photo pixels per output pixel of the cover crop (``k`` before bounding).

    Cached per worker process (keyed by the photo's SHA-256), as every chunk of a memory uses it.

    Raises:
        ValueError: the bytes are not a decodable image.
    """
    digest = hashlib.sha256(image_png).hexdigest()
    return _canvas_cached(digest, image_png, width, height)


def render_world_frames(
    photo: Image.Image, path: tuple[Camera, ...], frames: int, width: int, height: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """Yield the ``frames`` views along ``path`` over ``photo`` (a ``canvas``), each
    ``height x width x 3`` uint8. Camera coordinates are in output-size photo pixels."""
    k = photo.width / width
    views = []
    for f in range(frames):
        cam = camera_at(path, f)
        # Fold the centre into one mirror period (2 x the photo) so the padding stays bounded.
        cx = (cam.x + width / 2) % (2 * width) - width / 2
        cy = (cam.y + height / 2) % (2 * height) - height / 2
        half_w, half_h = width / (2 * cam.scale), height / (2 * cam.scale)
        views.append(((cx - half_w) * k, (cy - half_h) * k, (cx + half_w) * k, (cy + half_h) * k))
    pad_l = math.ceil(max(0.0, -min(v[0] for v in views))) + _MARGIN
    pad_t = math.ceil(max(0.0, -min(v[1] for v in views))) + _MARGIN
    pad_r = math.ceil(max(0.0, max(v[2] for v in views) - photo.width)) + _MARGIN
    pad_b = math.ceil(max(0.0, max(v[3] for v in views) - photo.height)) + _MARGIN
    texture = Image.fromarray(
        np.pad(np.asarray(photo), ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="symmetric")
    )
    for x0, y0, x1, y1 in views:
        box = (x0 + pad_l, y0 + pad_t, x1 + pad_l, y1 + pad_t)
        view = texture.resize((width, height), Image.Resampling.BILINEAR, box=box)
        yield np.asarray(view, dtype=np.uint8)


def render_world_chunk(
    origin_png: bytes,
    history: Sequence[str],
    pose: str,
    frames: int,
    width: int,
    height: int,
    fps: int,
) -> RenderOutput:
    """Render one chunk from the memory's photo, the camera continuing from ``history``.

    Args:
        origin_png: the memory's photo (any Pillow-readable image, any size).
        history: the poses of the chunk's ancestors, root first (empty for a root chunk).
        pose, frames, width, height, fps: as ``gpu.render.render_chunk``.

    Returns:
        RenderOutput; ``timings["render"]`` includes preparing the canvas (cached per process).

    Raises:
        PoseError: a pose is malformed, or ``pose``'s steps do not sum to ``(frames - 1) // 4``.
        ValueError: bad frames/size/fps, an undecodable photo, or too long a history.
    """
    validate_profile(frames, width, height, fps)
    t0 = time.perf_counter()
    photo, detail = canvas(origin_png, width, height)
    path = world_path(history, pose, frames, width, height, zoom_limit(detail))
    setup_s = time.perf_counter() - t0
    frame_iter = render_world_frames(photo, path, frames, width, height)
    return encode_chunk(frame_iter, frames, width, height, fps, setup_s)
