"""The local renderer keeps a walk sharp: every chunk from the memory's photo, camera accumulated.

Sharpness is the variance of the Laplacian of the grey image (a standard focus measure): the
last frame of a 30-chunk walk must keep at least 50 % of the root frame's. The photo is a 2x2
mosaic of four real photos (1024 x 1024): more pixels than the 320 x 180 output needs even at
the closest zoom, as a phone photo has for the 854 x 480 default.
"""

from __future__ import annotations

import io
import itertools
from functools import cache

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data

from gpu.render import WALL_DISTANCE, render_chunk
from gpu.world import (
    MAX_ZOOM,
    MIN_ZOOM,
    MIN_ZOOM_LIMIT,
    PITCH_LIMIT_DEG,
    canvas,
    render_world_chunk,
    render_world_frames,
    start_camera,
    step,
    world_path,
    zoom_limit,
)

W, H, FRAMES = 320, 180, 33
STEPS = 30


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (higher: more fine detail)."""
    return float(ndimage.laplace(rgb.astype(np.float64).mean(axis=2)).var())


def png_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@cache
def mosaic_png() -> bytes:
    names = ("astronaut", "coffee", "chelsea", "rocket")
    out = Image.new("RGB", (1024, 1024))
    for i, name in enumerate(names):
        tile = Image.fromarray(getattr(data, name)()).convert("RGB").resize((512, 512))
        out.paste(tile, ((i % 2) * 512, (i // 2) * 512))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def pose_of(action: str) -> str:
    move, _, turn = action.partition("+")
    return f"{move}-4, {turn}-4" if turn else f"{action}-8"


def first_frame(history: list[str], pose: str) -> np.ndarray:
    img, detail = canvas(mosaic_png(), W, H)
    path = world_path(history, pose, FRAMES, W, H, zoom_limit(detail))
    return next(render_world_frames(img, path, FRAMES, W, H))


def test_a_30_step_forward_walk_stays_sharp_chunk_by_chunk() -> None:
    # The real chain: each chunk rendered and encoded, its last frame stored as the child's input.
    photo = mosaic_png()
    parent = render_world_chunk(photo, (), "w-8", FRAMES, W, H, 24)
    root_first = first_frame([], "w-8")
    history = ["w-8"]
    for _ in range(STEPS - 1):
        child = render_world_chunk(photo, tuple(history), "w-8", FRAMES, W, H, 24)
        # The child starts where its parent ended: its first frame is the parent's last frame.
        assert np.array_equal(first_frame(history, "w-8"), png_array(parent.last_frame_png))
        history.append("w-8")
        parent = child
    ratio = sharpness(png_array(parent.last_frame_png)) / sharpness(root_first)
    assert ratio >= 0.5, f"after {STEPS} steps forward the view kept {ratio:.0%} of its detail"


@pytest.mark.parametrize(
    "action", ["w", "s", "a", "d", "left", "right", "up", "down", "w+right", "s+left", "w+up"]
)
def test_a_30_step_walk_in_any_direction_stays_sharp(action: str) -> None:
    img, detail = canvas(mosaic_png(), W, H)
    limit = zoom_limit(detail)
    pose = pose_of(action)
    root = next(render_world_frames(img, world_path((), pose, FRAMES, W, H, limit), FRAMES, W, H))
    path = world_path((pose,) * (STEPS - 1), pose, FRAMES, W, H, limit)
    *_, last = render_world_frames(img, path, FRAMES, W, H)
    ratio = sharpness(last) / sharpness(root)
    assert ratio >= 0.5, f"{action} x {STEPS}: {ratio:.0%} of the root frame's detail"
    assert float(np.abs(last.astype(int) - root.astype(int)).mean()) > 5  # the camera moved


def test_the_old_chained_warp_loses_the_photo() -> None:
    # What the issue saw: zooming into the previous chunk's last frame, 4 times, is a flat blur.
    image = mosaic_png()
    for _ in range(4):
        image = render_chunk(image, "w-8", FRAMES, W, H, 24).last_frame_png
    assert sharpness(png_array(image)) < 0.2 * sharpness(first_frame([], "w-8"))


def test_zoom_and_pitch_stay_bounded_and_every_step_moves() -> None:
    cam = start_camera(W, H)
    scales = [cam.camera.scale]
    for _ in range(2000):
        cam = step(cam, "w", W, MAX_ZOOM)
        scales.append(cam.camera.scale)
    assert max(scales) <= MAX_ZOOM + 1e-9
    assert all(b > a for a, b in itertools.pairwise(scales[:201]))
    # The first step is HY-WorldPlay's 0.08 units.
    assert WALL_DISTANCE - step(start_camera(W, H), "w", W).camera.distance == pytest.approx(0.08)
    cam = start_camera(W, H)
    for _ in range(2000):
        cam = step(cam, "s", W)
    assert cam.camera.scale >= MIN_ZOOM - 1e-9
    for action, sign in (("up", 1), ("down", -1)):
        cam = start_camera(W, H)
        for _ in range(100):
            cam = step(cam, action, W)
        assert cam.pitch_deg == sign * PITCH_LIMIT_DEG


def test_zoom_limit_follows_the_photos_detail() -> None:
    assert zoom_limit(0.6) == MIN_ZOOM_LIMIT  # a small photo can still be approached a little
    assert zoom_limit(1.6) == 1.6
    assert zoom_limit(4.7) == MAX_ZOOM  # a phone photo at 854 x 480
    img, detail = canvas(mosaic_png(), W, H)
    assert detail == pytest.approx(1024 / W) and img.size == (2 * W, 2 * H)


def test_history_and_pose_errors() -> None:
    from orchestrator.core.poses import PoseError

    with pytest.raises(PoseError):
        render_world_chunk(mosaic_png(), ("x-8",), "w-8", FRAMES, W, H, 24)
    with pytest.raises(PoseError):
        render_world_chunk(mosaic_png(), (), "w-7", FRAMES, W, H, 24)
    with pytest.raises(ValueError):
        render_world_chunk(b"not an image", (), "w-8", FRAMES, W, H, 24)
