"""The local CPU renderer: a camera that really moves over the photo, one chunk at a time.

This is the default GPU backend's pixel engine (``gpu.local`` runs ``render_chunk`` in worker
processes). It follows HY-WorldPlay's pose semantics (DESIGN.md "Poses"): a pose is a sequence of
per-latent steps; each step translates the camera 0.08 units along its local axis (``w`` = +z,
``s`` = -z, ``d`` = +x, ``a`` = -x) or rotates it 3 degrees (``right`` = +yaw, ``left`` = -yaw,
``up`` = +pitch, ``down`` = -pitch). Steps accumulate across segments; video frame ``f`` sits at
latent position ``f / 4`` and the camera is interpolated linearly between latent steps, so frame 0
is the input exactly (a child's first frame equals its parent's last frame) and the last frame
(``4 * steps``) shows the camera after the final step.

Camera model (a 2.5-D "photo wall" approximation, chosen because it stays defined for every pose
a chunk can hold and renders as one affine warp per frame in Pillow's C code):

- The fitted photo (cover-cropped to width x height) is what a pinhole camera with a 60 degree
  horizontal field of view sees of a wall ``WALL_DISTANCE`` = 4 units straight ahead; the focal
  length is ``f = (width / 2) / tan(30 deg)`` pixels. The wall continues beyond the photo as its
  mirror image (period 2 x width, 2 x height; mirroring, unlike black or edge smearing, keeps
  texture and has no seam), so the world is defined in every direction.
- The camera state is the point of the wall at the view centre (in photo pixels) and the
  distance to the wall. ``w``/``s`` change the distance by 0.08 units (clamped at
  ``MIN_WALL_DISTANCE``, so 31 steps of ``w`` zoom 4 / 1.52 = 2.6x, never degenerate); ``d``/``a``
  move the centre sideways by 0.08 units of wall (parallax ``0.08 f / distance`` view pixels);
  ``right``/``left``/``up``/``down`` move the view by ``f * 3 deg`` view pixels, the small-angle
  image motion of a pinhole rotation, applied linearly in angle (as on a cylindrical panorama) so
  that 31 steps of ``right`` (93 degrees) pan 1.6 widths instead of reaching the pinhole's
  singularity at 90 degrees. Translations therefore act along the camera's local axes: the wall is
  always in front of the camera, whichever way it has turned.
- A frame is the window of the wall at scale ``WALL_DISTANCE / distance`` (view pixels per photo
  pixel) around the centre: an affine (scale and shift) map, rendered as a bilinear resize of that
  box of the mirrored texture, which also low-pass filters when zooming out. Keystone distortion
  of a real rotation is not modelled.

Encoding: H.264 (libx264, yuv420p, CRF 23, preset veryfast), a keyframe every 24 frames and no
scene-cut keyframes (so a seek reaches the last frame quickly, DESIGN.md "Facts checked"), MP4
with ``movflags=+faststart`` (moov first, playable while downloading), all in memory.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from orchestrator.core.poses import Pose, latents_for_frames, parse_pose

if TYPE_CHECKING:
    from typing_extensions import Buffer

STEP_TRANSLATION = 0.08
"""Camera translation per latent step of w/s/a/d, in world units (HY-WorldPlay)."""
STEP_ROTATION_DEG = 3.0
"""Camera rotation per latent step of left/right/up/down, in degrees (HY-WorldPlay)."""
HFOV_DEG = 60.0
"""Horizontal field of view of the pinhole camera, in degrees."""
WALL_DISTANCE = 4.0
"""Distance from the initial camera to the photo wall, in world units."""
MIN_WALL_DISTANCE = 0.5
"""Closest the camera gets to the wall, in world units (caps the zoom at 8x)."""
FRAMES_PER_LATENT = 4
GOP_FRAMES = 24
"""A keyframe every this many frames (``-g 24``)."""
CRF = 23
PRESET = "veryfast"
MIN_SIDE = 16
MAX_WIDTH = 1920
MAX_HEIGHT = 1080
MAX_FRAMES = 253
"""Longest chunk accepted, in frames (63 latent steps; bounds the mirrored texture's size)."""
MAX_FPS = 120
PNG_LEVEL = 3
"""zlib level of the last-frame PNG: ~3x faster than Pillow's default 6 for ~7% more bytes."""

_MARGIN = 2  # texture pixels beyond the sampled window so bilinear taps stay inside
_X264_PARAMS = f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0"


@dataclass(frozen=True, slots=True)
class RenderOutput:
    """One rendered chunk.

    Attributes:
        video_mp4: H.264 yuv420p MP4 bytes, ``frames`` frames of ``width`` x ``height`` pixels.
        last_frame_png: the last rendered frame as RGB PNG bytes (from the rendered pixels, not
            from decoding the MP4): the next chunk's input.
        frames, width, height: what was written (frames, pixels).
        timings: seconds per phase: ``render`` (fit + warps), ``encode`` (x264 + mux) and
            ``png`` (last-frame PNG).
    """

    video_mp4: bytes
    last_frame_png: bytes
    frames: int
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Camera:
    """The camera after some latent steps.

    Attributes:
        x, y: the wall point at the view centre, in photo pixels (the photo spans
            ``[0, width] x [0, height]``; beyond it the wall is the photo mirrored).
        distance: camera-to-wall distance in world units (``WALL_DISTANCE`` at the start).
    """

    x: float
    y: float
    distance: float

    @property
    def scale(self) -> float:
        """View pixels per photo pixel (> 1 when zoomed in)."""
        return WALL_DISTANCE / self.distance


def focal_length(width: int) -> float:
    """Pinhole focal length in pixels for ``width`` and the ``HFOV_DEG`` field of view."""
    return (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)


def camera_path(pose: Pose, width: int, height: int) -> tuple[Camera, ...]:
    """Camera after 0, 1, ..., n latent steps of ``pose`` (length ``pose.total_steps + 1``).

    Units: see ``Camera``. ``width``/``height`` are the output size in pixels. Pure.
    """
    focal = focal_length(width)
    wall_px_per_unit = focal / WALL_DISTANCE
    turn = focal * math.radians(STEP_ROTATION_DEG)
    cam = Camera(width / 2, height / 2, WALL_DISTANCE)
    path = [cam]
    for action in pose.step_actions():
        x, y, dist = cam.x, cam.y, cam.distance
        # Rotation moves the view by a fixed number of view pixels, i.e. 1/scale photo pixels.
        view_to_photo = 1.0 / cam.scale
        if action == "w":
            dist = max(dist - STEP_TRANSLATION, MIN_WALL_DISTANCE)
        elif action == "s":
            dist += STEP_TRANSLATION
        elif action == "d":
            x += STEP_TRANSLATION * wall_px_per_unit
        elif action == "a":
            x -= STEP_TRANSLATION * wall_px_per_unit
        elif action == "right":
            x += turn * view_to_photo
        elif action == "left":
            x -= turn * view_to_photo
        elif action == "up":
            y -= turn * view_to_photo
        elif action == "down":
            y += turn * view_to_photo
        else:  # pragma: no cover - Pose validates actions
            raise ValueError(f"unknown action {action!r}")
        cam = Camera(x, y, dist)
        path.append(cam)
    return tuple(path)


def camera_at(path: tuple[Camera, ...], frame: int) -> Camera:
    """The camera of video frame ``frame``: latent position ``frame / 4``, linearly interpolated.

    Raises:
        ValueError: ``frame`` outside ``[0, 4 * (len(path) - 1)]``.
    """
    last = FRAMES_PER_LATENT * (len(path) - 1)
    if not 0 <= frame <= last:
        raise ValueError(f"frame {frame} outside 0..{last}")
    k, rem = divmod(frame, FRAMES_PER_LATENT)
    if rem == 0:
        return path[k]
    t = rem / FRAMES_PER_LATENT
    a, b = path[k], path[k + 1]
    return Camera(
        a.x + (b.x - a.x) * t,
        a.y + (b.y - a.y) * t,
        a.distance + (b.distance - a.distance) * t,
    )


def fit_image(image_png: bytes, width: int, height: int) -> npt.NDArray[np.uint8]:
    """Decode ``image_png`` and cover-crop it (centred, Lanczos) to ``height x width x 3`` RGB.

    An image already of that size is returned pixel for pixel (chunk continuity).

    Raises:
        ValueError: the bytes are not a decodable image.
    """
    try:
        with Image.open(io.BytesIO(image_png)) as img:
            img.load()
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image_png is not a decodable image: {exc}") from exc
    if rgb.size != (width, height):
        rgb = ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def _window(cam: Camera, width: int, height: int) -> tuple[float, float, float]:
    """Top-left (photo px) and scale of the view, with the centre folded into one mirror period.

    The mirrored wall repeats every 2 x width / 2 x height, so folding the centre into the period
    around the photo keeps the texture small however far the camera pans.
    """
    cx = (cam.x + width / 2) % (2 * width) - width / 2
    cy = (cam.y + height / 2) % (2 * height) - height / 2
    s = cam.scale
    return cx - width / (2 * s), cy - height / (2 * s), s


def render_frames(
    fitted: npt.NDArray[np.uint8], pose: Pose, frames: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """Yield the ``frames`` views of ``pose`` over ``fitted``, each ``height x width x 3`` uint8.

    ``fitted`` is the cover-cropped input (``fit_image``); frame 0 is ``fitted`` itself.

    Raises:
        ValueError: ``frames`` does not match ``pose`` (``4 * pose.total_steps + 1``).
    """
    height, width = fitted.shape[:2]
    if frames != FRAMES_PER_LATENT * pose.total_steps + 1:
        raise ValueError(f"{frames} frames do not match a pose of {pose.total_steps} steps")
    path = camera_path(pose, width, height)
    windows = [_window(camera_at(path, f), width, height) for f in range(frames)]
    left = min(x0 for x0, _, _ in windows)
    top = min(y0 for _, y0, _ in windows)
    right = max(x0 + width / s for x0, _, s in windows)
    bottom = max(y0 + height / s for _, y0, s in windows)
    pad_l = math.ceil(max(0.0, -left)) + _MARGIN
    pad_t = math.ceil(max(0.0, -top)) + _MARGIN
    pad_r = math.ceil(max(0.0, right - width)) + _MARGIN
    pad_b = math.ceil(max(0.0, bottom - height)) + _MARGIN
    # "symmetric" repeats the edge pixel: the mirror image joins the photo without a seam.
    texture = Image.fromarray(
        np.pad(fitted, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)), mode="symmetric")
    )
    yield fitted
    for x0, y0, s in windows[1:]:
        # A scale-and-shift warp is a resize of a box: Pillow's separable resize is ~2x faster
        # than its generic affine transform and low-pass filters when zooming out.
        box = (x0 + pad_l, y0 + pad_t, x0 + pad_l + width / s, y0 + pad_t + height / s)
        view = texture.resize((width, height), Image.Resampling.BILINEAR, box=box)
        yield np.asarray(view, dtype=np.uint8)


def validate_profile(frames: int, width: int, height: int, fps: int) -> None:
    """Check a render profile: sizes in pixels, frames = 4k + 1, fps in frames per second.

    Raises:
        ValueError: a message naming the rule broken.
    """
    for name, value, top in (("width", width, MAX_WIDTH), ("height", height, MAX_HEIGHT)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer (got {value!r})")
        if not MIN_SIDE <= value <= top:
            raise ValueError(f"{name} must be within {MIN_SIDE}..{top} pixels (got {value})")
        if value % 2:
            raise ValueError(f"{name} must be even for yuv420p (got {value})")
    if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
        raise ValueError(f"fps must be an integer within 1..{MAX_FPS} (got {fps!r})")
    latents_for_frames(frames)  # raises unless frames = 4k + 1
    if not FRAMES_PER_LATENT + 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be within {FRAMES_PER_LATENT + 1}..{MAX_FRAMES}: {frames}")


def render_chunk(
    image_png: bytes, pose: str, frames: int, width: int, height: int, fps: int
) -> RenderOutput:
    """Render one chunk: ``pose`` over ``image_png``, encoded as an MP4.

    Args:
        image_png: input frame (any Pillow-readable image; PNG in practice), cover-cropped to
            ``width x height``.
        pose: HY-WorldPlay pose string; its steps must sum to ``(frames - 1) // 4``.
        frames: video frames, 4k + 1 (125 = 32 latents, about 5.2 s at 24 fps).
        width, height: output size in pixels, even, at most ``MAX_WIDTH x MAX_HEIGHT``.
        fps: frames per second written into the MP4.

    Returns:
        RenderOutput with the MP4, the last frame as PNG and ``render``/``encode``/``png`` seconds.

    Raises:
        PoseError: the pose is malformed or its steps do not sum to ``(frames - 1) // 4``.
        ValueError: bad frames/size/fps, or ``image_png`` is not an image.
    """
    validate_profile(frames, width, height, fps)
    parsed = parse_pose(pose, frames)
    t0 = time.perf_counter()
    fitted = fit_image(image_png, width, height)
    fit_s = time.perf_counter() - t0
    return encode_chunk(render_frames(fitted, parsed, frames), frames, width, height, fps, fit_s)


def encode_chunk(
    frame_iter: Iterator[npt.NDArray[np.uint8]],
    frames: int,
    width: int,
    height: int,
    fps: int,
    setup_s: float = 0.0,
) -> RenderOutput:
    """Encode ``frames`` frames from ``frame_iter`` (``height x width x 3`` uint8) as an MP4.

    ``setup_s`` (seconds spent preparing the frames' source) is added to the ``render`` timing.
    The last frame's PNG is taken from the rendered pixels, never by decoding the MP4.
    """
    render_s = setup_s
    encode_s = 0.0
    store = bytearray()
    last: npt.NDArray[np.uint8] | None = None
    t0 = time.perf_counter()
    # The mp4 muxer re-opens its output to move the moov atom forward (+faststart); io_open hands
    # it a second cursor over the same in-memory buffer instead of a file path.
    with av.open(
        _Cursor(store),
        "w",
        format="mp4",
        container_options={"movflags": "+faststart"},
        io_open=lambda _url, _flags, _options: _Cursor(store),
    ) as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={"crf": str(CRF), "preset": PRESET, "x264-params": _X264_PARAMS},
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = GOP_FRAMES
        encode_s += time.perf_counter() - t0
        for index in range(frames):
            t0 = time.perf_counter()
            last = next(frame_iter)
            t1 = time.perf_counter()
            video_frame = av.VideoFrame.from_ndarray(last, format="rgb24")
            video_frame.pts = index
            container.mux(stream.encode(video_frame))
            t2 = time.perf_counter()
            render_s += t1 - t0
            encode_s += t2 - t1
        t0 = time.perf_counter()
        container.mux(stream.encode(None))
    encode_s += time.perf_counter() - t0
    assert last is not None  # frames >= 5 (validate_profile)
    t0 = time.perf_counter()
    png = io.BytesIO()
    Image.fromarray(last).save(png, format="PNG", compress_level=PNG_LEVEL)
    png_s = time.perf_counter() - t0
    return RenderOutput(
        video_mp4=bytes(store),
        last_frame_png=png.getvalue(),
        frames=frames,
        width=width,
        height=height,
        timings={"render": render_s, "encode": encode_s, "png": png_s},
    )


class _Cursor(io.RawIOBase):
    """A file-like cursor over a shared bytearray: two cursors behave like two opens of a file."""

    def __init__(self, store: bytearray) -> None:
        super().__init__()
        self._store = store
        self._pos = 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        end = len(self._store) if size is None or size < 0 else self._pos + size
        out = bytes(self._store[self._pos : end])
        self._pos += len(out)
        return out

    def write(self, data: Buffer) -> int:
        chunk = bytes(data)
        if self._pos > len(self._store):
            self._store.extend(bytes(self._pos - len(self._store)))
        self._store[self._pos : self._pos + len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._store)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos
