"""Benchmark the local renderer and the ways to get a chunk's last frame (the next chunk's input).

Usage::

    uv run python benchmarks/renderer.py [--repeat N] [--out benchmarks/results/renderer.json]

On a real photo (scikit-image's astronaut) at the default profile (854 x 480, 125 frames, 24 fps)
it times, per chunk, in seconds:

- ``render_chunk``: wall time, and its ``render`` / ``encode`` / ``png`` split;
- last frame (a): the ``last_frame_png`` render_chunk returns, no decoding at all; its only cost is
  the PNG encode already counted in ``png``;
- last frame (b): PyAV seek to the last keyframe (one every 24 frames), decode to the end, PNG;
- last frame (c): the seed's ``extract_last_frame`` as written in
  ``seed/rewind-backend-architecture.md`` (imageio v2 ``get_reader``, every frame, Pillow PNG);
  and, for reference, (c') PyAV decoding every frame (no PNG).

It checks that (b) yields exactly the frame a full decode ends with, and how far the returned PNG
is from the decoded last frame (x264 loss). Medians and p90 over ``--repeat`` runs after one
warm-up run go to a JSON file and a table. DESIGN.md "Facts checked" expects (b) ~10 ms against
~180 ms for (c).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import PIL
from PIL import Image

from gpu.render import render_chunk

try:
    import imageio
except ImportError:  # pragma: no cover - the seed's dependency may be absent
    imageio = None


def astronaut_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def to_png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def last_frame_by_seek(mp4: bytes) -> np.ndarray:
    """(b) Seek to the keyframe at or before the end, decode the rest, keep the last frame."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        end = (stream.start_time or 0) + (stream.duration or 0)
        container.seek(end, stream=stream, backward=True, any_frame=False)
        last = None
        for frame in container.decode(stream):
            last = frame
        assert last is not None, "seek decoded no frame"
        return last.to_ndarray(format="rgb24")


def last_frame_full_decode(mp4: bytes) -> np.ndarray:
    """(c') Decode every frame with PyAV and keep the last one."""
    with av.open(io.BytesIO(mp4)) as container:
        last = None
        for frame in container.decode(video=0):
            last = frame
        assert last is not None, "no frame decoded"
        return last.to_ndarray(format="rgb24")


def extract_last_frame(video_bytes: bytes) -> bytes:
    """(c) The seed's function, verbatim (imageio v2 API)."""
    assert imageio is not None
    reader = imageio.get_reader(io.BytesIO(video_bytes), format="mp4")
    last_frame = None
    for frame in reader:
        last_frame = frame
    reader.close()
    img = Image.fromarray(last_frame)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def stats(samples: list[float]) -> dict[str, Any]:
    return {
        "median_s": float(np.median(samples)),
        "p90_s": float(np.percentile(samples, 90)),
        "samples_s": samples,
    }


def run(repeat: int, pose: str, frames: int, width: int, height: int) -> dict[str, Any]:
    png = astronaut_png()
    samples: dict[str, list[float]] = {}
    checks: dict[str, Any] = {"seek_equals_full_decode": True, "returned_png_mad_max": 0.0}
    for i in range(repeat + 1):  # run 0 warms caches and lazy imports, and is not recorded
        total, out = timed(render_chunk, png, pose, frames, width, height, 24)
        mp4 = out.video_mp4
        row = {"render_chunk": total, **{f"render_chunk.{k}": v for k, v in out.timings.items()}}
        row["last_frame.a_returned_png"] = out.timings["png"]
        seek_s, seek_frame = timed(last_frame_by_seek, mp4)
        row["last_frame.b_seek"] = seek_s
        row["last_frame.b_seek_png"] = seek_s + timed(to_png, seek_frame)[0]
        full_s, full_frame = timed(last_frame_full_decode, mp4)
        row["last_frame.c_pyav_all_frames"] = full_s
        if imageio is not None:
            row["last_frame.c_seed_imageio_png"] = timed(extract_last_frame, mp4)[0]
        if i == 0:
            continue
        for key, value in row.items():
            samples.setdefault(key, []).append(value)
        returned = np.asarray(Image.open(io.BytesIO(out.last_frame_png)).convert("RGB"))
        mad = float(np.mean(np.abs(returned.astype(np.int16) - full_frame.astype(np.int16))))
        checks["seek_equals_full_decode"] &= bool(np.array_equal(seek_frame, full_frame))
        checks["returned_png_mad_max"] = max(checks["returned_png_mad_max"], mad)
    results = {key: stats(values) for key, values in samples.items()}
    seek = results["last_frame.b_seek_png"]["median_s"]
    ratios = {
        "c_pyav_all_frames / b_seek": (
            results["last_frame.c_pyav_all_frames"]["median_s"]
            / results["last_frame.b_seek"]["median_s"]
        )
    }
    if "last_frame.c_seed_imageio_png" in results:
        seed = results["last_frame.c_seed_imageio_png"]["median_s"]
        # Same output (a default-level PNG) both ways: the end-to-end saving.
        ratios["c_seed_imageio_png / b_seek_png"] = seed / seek
        # DESIGN.md's comparison: the seed's whole function against the bare seek.
        ratios["c_seed_imageio_png / b_seek"] = seed / results["last_frame.b_seek"]["median_s"]
    return {
        "profile": {"pose": pose, "frames": frames, "width": width, "height": height, "fps": 24},
        "photo": "skimage.data.astronaut (512x512)",
        "repeat": repeat,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "av": av.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "imageio": getattr(imageio, "__version__", None),
        },
        "results": results,
        "ratios": ratios,
        "checks": checks,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"profile {report['profile']}, {report['repeat']} repeats (after 1 warm-up)")
    print(f"{'measure':40s} {'median ms':>10s} {'p90 ms':>10s}")
    for key, value in report["results"].items():
        print(f"{key:40s} {value['median_s'] * 1e3:10.1f} {value['p90_s'] * 1e3:10.1f}")
    for key, value in report["ratios"].items():
        print(f"ratio {key}: {value:.1f}x")
    print(f"checks: {report['checks']}")
    if imageio is None:
        print("imageio is not installed: (c) the seed's extract_last_frame was skipped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="recorded runs (default 5)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/renderer.json"))
    parser.add_argument("--pose", default="w-31")
    parser.add_argument("--frames", type=int, default=125)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    report = run(args.repeat, args.pose, args.frames, args.width, args.height)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {args.out}")
    return 0 if report["checks"]["seek_equals_full_decode"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
