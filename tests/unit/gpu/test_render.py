"""The local renderer on a real photo: MP4 facts, continuity and the camera's motion."""

from __future__ import annotations

import io
import itertools
import math
import pickle
from dataclasses import dataclass
from functools import cache

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.registration import phase_cross_correlation

from gpu.render import (
    STEP_ROTATION_DEG,
    STEP_TRANSLATION,
    WALL_DISTANCE,
    RenderOutput,
    camera_at,
    camera_path,
    fit_image,
    focal_length,
    render_chunk,
    render_frames,
)
from orchestrator.core.poses import PoseError, parse_pose

W, H, FRAMES = 160, 96, 125
CW, CH = 320, 192  # continuity checks: big enough that x264 keeps a detailed photo > 30 dB


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@cache
def astronaut_png() -> bytes:
    return png_bytes(data.astronaut())


@cache
def chunk(pose: str, frames: int = FRAMES, width: int = W, height: int = H) -> RenderOutput:
    return render_chunk(astronaut_png(), pose, frames, width, height, 24)


@dataclass
class Decoded:
    frames: list[np.ndarray]
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    keyframes: list[int]


def decode(mp4: bytes) -> Decoded:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 0)
        keyframes = sorted(
            round(float(packet.pts * stream.time_base) * fps)
            for packet in container.demux(stream)
            if packet.pts is not None and packet.is_keyframe
        )
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        ctx = stream.codec_context
        return Decoded(frames, ctx.width, ctx.height, fps, ctx.name, str(ctx.pix_fmt), keyframes)


def png_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference on 0..255."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (CRF 23 keeps a detailed photo above ~30 dB)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def gray(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).mean(axis=2)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(gray(a).ravel(), gray(b).ravel())[0, 1])


def content_shift(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(dy, dx) in pixels by which the image content moved from ``before`` to ``after``."""
    shift, _, _ = phase_cross_correlation(gray(before), gray(after), upsample_factor=10)
    return -float(shift[0]), -float(shift[1])


def test_mp4_facts_small_profile() -> None:
    out = chunk("w-8", frames=33)
    video = decode(out.video_mp4)
    assert (out.frames, out.width, out.height) == (33, W, H)
    assert len(video.frames) == 33
    assert (video.width, video.height) == (W, H)
    assert all(f.shape == (H, W, 3) for f in video.frames)
    assert video.fps == 24
    assert (video.codec, video.pix_fmt) == ("h264", "yuv420p")
    assert video.keyframes == [0, 24]
    assert set(out.timings) >= {"render", "encode"}
    assert all(v >= 0 for v in out.timings.values())


def test_default_profile_854x480x125() -> None:
    out = render_chunk(astronaut_png(), "w-31", 125, 854, 480, 24)
    video = decode(out.video_mp4)
    assert len(video.frames) == 125
    assert (video.width, video.height) == (854, 480)  # not silently padded to 864
    assert video.fps == 24
    assert (video.codec, video.pix_fmt) == ("h264", "yuv420p")
    assert video.keyframes == [0, 24, 48, 72, 96, 120]
    # faststart: the moov atom precedes the media data.
    assert out.video_mp4.index(b"moov") < out.video_mp4.index(b"mdat")
    last = png_array(out.last_frame_png)
    assert last.shape == (480, 854, 3)
    assert mad(last, video.frames[-1]) < 3
    assert mad(fit_image(astronaut_png(), 854, 480), video.frames[0]) < 3


def test_last_frame_png_is_the_mp4s_last_frame() -> None:
    out = chunk("a-15, right-16", width=CW, height=CH)
    video = decode(out.video_mp4)
    last = png_array(out.last_frame_png)
    # Small frames of the astronaut are all edges: x264 (CRF 23) loses ~3.5 levels on average
    # here; the default-profile test holds the tighter mean-abs-diff bound of 3.
    assert psnr(last, video.frames[-1]) > 30
    assert mad(last, video.frames[-1]) < 0.5 * mad(last, video.frames[-5])


def test_first_frame_is_the_fitted_input() -> None:
    fitted = fit_image(astronaut_png(), CW, CH)
    first = next(render_frames(fitted, parse_pose("d-31"), FRAMES))
    assert np.array_equal(first, fitted)
    assert psnr(decode(chunk("d-31", width=CW, height=CH).video_mp4).frames[0], fitted) > 30


def test_child_starts_where_parent_ended() -> None:
    parent = chunk("w-15, left-16", width=CW, height=CH)
    child_input = fit_image(parent.last_frame_png, CW, CH)
    assert np.array_equal(child_input, png_array(parent.last_frame_png))
    child = render_chunk(parent.last_frame_png, "s-31", FRAMES, CW, CH, 24)
    child_first = decode(child.video_mp4).frames[0]
    assert psnr(child_first, png_array(parent.last_frame_png)) > 30


def test_w_zooms_into_the_centre() -> None:
    video = decode(chunk("w-31").video_mp4)
    first, last = video.frames[0], video.frames[-1]
    zoom = WALL_DISTANCE / (WALL_DISTANCE - 31 * STEP_TRANSLATION)
    cw, ch = W / zoom, H / zoom
    box = ((W - cw) / 2, (H - ch) / 2, (W + cw) / 2, (H + ch) / 2)
    predicted = np.asarray(
        Image.fromarray(first).resize((W, H), Image.Resampling.BILINEAR, box=box)
    )
    assert corr(predicted, last) > 0.9
    assert corr(predicted, last) > corr(first, last) + 0.2


def test_s_zooms_out_around_the_centre() -> None:
    video = decode(chunk("s-31").video_mp4)
    first, last = video.frames[0], video.frames[-1]
    zoom = WALL_DISTANCE / (WALL_DISTANCE + 31 * STEP_TRANSLATION)
    cw, ch = round(W * zoom), round(H * zoom)
    x0, y0 = (W - cw) // 2, (H - ch) // 2
    centre = last[y0 : y0 + ch, x0 : x0 + cw]
    predicted = np.asarray(Image.fromarray(first).resize((cw, ch), Image.Resampling.BILINEAR))
    assert corr(predicted, centre) > 0.9


@pytest.mark.parametrize(
    ("move", "opposite", "axis", "step_px"),
    [
        # Moving right: the wall, 4 units away, slides left by 0.08 f / 4 px per step.
        ("d", "a", 1, STEP_TRANSLATION * focal_length(320) / WALL_DISTANCE),
        # Turning right/up: content slides left/down by f * 3 degrees per step.
        ("right", "left", 1, focal_length(320) * math.radians(STEP_ROTATION_DEG)),
        ("down", "up", 0, focal_length(320) * math.radians(STEP_ROTATION_DEG)),
    ],
)
def test_opposite_moves_shift_content_oppositely(
    move: str, opposite: str, axis: int, step_px: float
) -> None:
    # Frame 8 = two latent steps: a shift small enough for phase correlation to be unambiguous.
    forward = decode(chunk(f"{move}-8", frames=33, width=320, height=192).video_mp4).frames
    backward = decode(chunk(f"{opposite}-8", frames=33, width=320, height=192).video_mp4).frames
    shift_f = content_shift(forward[0], forward[8])
    shift_b = content_shift(backward[0], backward[8])
    expected = -2 * step_px  # d, right and down move the content towards -x / -y
    assert shift_f[axis] == pytest.approx(expected, abs=1.5)
    assert shift_b[axis] == pytest.approx(-expected, abs=1.5)
    assert abs(shift_f[1 - axis]) <= 1 and abs(shift_b[1 - axis]) <= 1


def test_far_pan_stays_defined_with_mirrored_edges() -> None:
    fitted = fit_image(astronaut_png(), W, H)
    frames = list(render_frames(fitted, parse_pose("right-31"), FRAMES))
    last = frames[-1]
    path = camera_path(parse_pose("right-31"), W, H)
    assert path[-1].x - path[0].x == pytest.approx(focal_length(W) * math.radians(93))
    # 93 degrees pans 1.6 widths past the photo: the view shows mirrored photo, not black.
    black = (last.max(axis=2) < 8).mean()
    assert black <= (fitted.max(axis=2) < 8).mean() + 0.02
    assert last.std() > 30
    # Consecutive frames stay close: the motion is continuous, no jumps at mirror seams.
    steps = [mad(a, b) for a, b in itertools.pairwise(frames)]
    assert max(steps) < 2 * float(np.median(steps))


def test_zoom_is_clamped_before_the_wall() -> None:
    path = camera_path(parse_pose("w-63", frames=253), W, H)
    assert path[31].distance == pytest.approx(WALL_DISTANCE - 31 * STEP_TRANSLATION)
    assert min(c.distance for c in path) == pytest.approx(0.5)
    out = render_chunk(astronaut_png(), "w-63", 253, 32, 32, 24)
    assert png_array(out.last_frame_png).shape == (32, 32, 3)


def test_camera_interpolates_linearly_between_latents() -> None:
    path = camera_path(parse_pose("s-8", frames=33), W, H)
    mid = camera_at(path, 6)
    assert mid.distance == pytest.approx((path[1].distance + path[2].distance) / 2)
    assert camera_at(path, 32) == path[8]
    with pytest.raises(ValueError):
        camera_at(path, 33)


@pytest.mark.parametrize("pose", ["w-30", "w-32", "x-31", "w-31,", "", "w-15 right-16"])
def test_bad_pose_raises_pose_error(pose: str) -> None:
    with pytest.raises(PoseError):
        render_chunk(astronaut_png(), pose, FRAMES, W, H, 24)


@pytest.mark.parametrize(
    ("frames", "width", "height", "fps", "match"),
    [
        (124, W, H, 24, "4k"),
        (1, W, H, 24, "frames"),
        (1001, W, H, 24, "frames"),
        (FRAMES, 161, H, 24, "even"),
        (FRAMES, W, 97, 24, "even"),
        (FRAMES, 8, H, 24, "width"),
        (FRAMES, 4000, H, 24, "width"),
        (FRAMES, W, H, 0, "fps"),
    ],
)
def test_bad_profile_raises_value_error(
    frames: int, width: int, height: int, fps: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        render_chunk(astronaut_png(), "w-31", frames, width, height, fps)


def test_non_image_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="not a decodable image"):
        render_chunk(b"definitely not a png", "w-31", FRAMES, W, H, 24)


def test_other_photo_modes_are_fitted_by_cover_crop() -> None:
    cat = Image.fromarray(data.chelsea()).convert("L")  # 451 x 300 greyscale
    buf = io.BytesIO()
    cat.save(buf, format="PNG")
    fitted = fit_image(buf.getvalue(), W, H)
    assert fitted.shape == (H, W, 3)
    assert np.array_equal(fitted[..., 0], fitted[..., 2])


def test_render_output_survives_pickling() -> None:
    out = chunk("w-8", frames=33)
    assert pickle.loads(pickle.dumps(out)) == out
