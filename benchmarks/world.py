"""Benchmark the sharp-walk renderer (``gpu.world``) against the chained warp (``gpu.render``).

Usage::

    uv run python benchmarks/world.py [--repeat N] [--steps 30] [--out FILE.json]

At the default profile (854 x 480, 125 frames, 24 fps), from a phone-sized photo (a 2x2 mosaic
of scikit-image's astronaut, coffee, chelsea and rocket, resized to 4032 x 3024 as a phone
shoots), it measures:

- seconds per chunk: ``render_world_chunk`` for the root (canvas prepared: uncached), for a
  chunk ``--steps`` deep (canvas cached, as in a worker process), and ``render_chunk`` (the
  chained warp of the parent's last frame);
- sharpness after ``--steps`` chunks of ``w-31`` (variance of the Laplacian of the last frame,
  as a share of the root frame's) for both renderers: the chained warp is run chunk by chunk.

Medians over ``--repeat`` runs (after a warm-up) go to JSON and stdout. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from gpu.render import fit_image, render_chunk
from gpu.world import (
    _canvas_cached,
    canvas,
    render_world_chunk,
    render_world_frames,
    world_path,
    zoom_limit,
)

W, H, FRAMES, FPS = 854, 480, 125, 24


def phone_photo() -> bytes:
    from skimage import data

    tiles = [Image.fromarray(getattr(data, n)()).convert("RGB").resize((512, 512))
             for n in ("astronaut", "coffee", "chelsea", "rocket")]  # fmt: skip
    mosaic = Image.new("RGB", (1024, 1024))
    for i, tile in enumerate(tiles):
        mosaic.paste(tile, ((i % 2) * 512, (i // 2) * 512))
    buf = io.BytesIO()
    mosaic.resize((4032, 3024), Image.Resampling.LANCZOS).save(buf, format="PNG")
    return buf.getvalue()


def sharpness(image: bytes | np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (PNG bytes or an RGB array)."""
    if isinstance(image, bytes):
        image = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    return float(ndimage.laplace(np.asarray(image, dtype=np.float64).mean(axis=2)).var())


def timed(fn: Any, repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/world.json"))
    args = ap.parse_args()
    photo = phone_photo()
    history = ("w-31",) * (args.steps - 1)

    def root_uncached() -> None:
        _canvas_cached.cache_clear()
        render_world_chunk(photo, (), "w-31", FRAMES, W, H, FPS)

    root_out = render_world_chunk(photo, (), "w-31", FRAMES, W, H, FPS)
    deep_out = render_world_chunk(photo, history, "w-31", FRAMES, W, H, FPS)
    report: dict[str, Any] = {
        "profile": {"width": W, "height": H, "frames": FRAMES, "fps": FPS},
        "photo_px": [4032, 3024],
        "steps": args.steps,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "seconds_per_chunk": {
            "world_root_uncached_canvas": timed(root_uncached, args.repeat),
            f"world_depth_{args.steps}_cached_canvas": timed(
                lambda: render_world_chunk(photo, history, "w-31", FRAMES, W, H, FPS), args.repeat
            ),
            "chained_warp": timed(
                lambda: render_chunk(root_out.last_frame_png, "w-31", FRAMES, W, H, FPS),
                args.repeat,
            ),
        },
    }
    # The walk's first frame: the world renderer's camera at the start; the photo cover-fitted.
    img, detail = canvas(photo, W, H)
    path = world_path((), "w-31", FRAMES, W, H, zoom_limit(detail))
    world_first = next(render_world_frames(img, path, FRAMES, W, H))
    chained = render_chunk(photo, "w-31", FRAMES, W, H, FPS).last_frame_png
    for _ in range(args.steps - 1):
        chained = render_chunk(chained, "w-31", FRAMES, W, H, FPS).last_frame_png
    report["sharpness_share_of_root"] = {
        "world": sharpness(deep_out.last_frame_png) / sharpness(world_first),
        "chained_warp": sharpness(chained) / sharpness(fit_image(photo, W, H)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
