"""A real walk through a running service: photo -> root chunk -> w, left, w+right.

Usage: start ``uv run rewind serve`` (embedded defaults), then
``uv run python benchmarks/walk.py [--url URL] [--out benchmarks/results/walk.json]``.

For each call it records the wall time and, for each chunk, what the MP4 really contains (frames,
size, fps, codec, decoded with PyAV) and how continuous the child's first frame is with its
parent's last frame (mean absolute difference, 0-255). Writes JSON and prints a summary.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[1] / "orchestrator" / "assets" / "astronaut.jpg"


def _decode(mp4: bytes) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        facts = {
            "frames": len(frames),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "fps": float(stream.average_rate or 0),
            "codec": stream.codec_context.name,
            "pix_fmt": str(stream.codec_context.pix_fmt),
        }
    return facts, frames[0], frames[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--photo", type=Path, default=SAMPLE)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/walk.json"))
    args = parser.parse_args()
    client = httpx.Client(base_url=args.url, timeout=600)
    steps: list[dict[str, Any]] = []
    image = base64.b64encode(args.photo.read_bytes()).decode()
    t0 = time.perf_counter()
    r = client.post("/api/memories", json={"image_base64": image, "prompt": "a walk"})
    r.raise_for_status()
    body = r.json()
    chunk = body["chunk"]
    facts, _, last = _decode(base64.b64decode(chunk["video_base64"]))
    steps.append(
        {
            "call": "POST /api/memories",
            "seconds": time.perf_counter() - t0,
            "pose": chunk["pose"],
            **facts,
        }
    )
    for action in ("w", "left", "w+right"):
        t0 = time.perf_counter()
        r = client.post(
            f"/api/memories/{body['memory_id']}/chunks",
            json={"parent_chunk_id": chunk["chunk_id"], "action": action},
        )
        r.raise_for_status()
        seconds = time.perf_counter() - t0
        chunk = r.json()["chunk"]
        facts, first, new_last = _decode(base64.b64decode(chunk["video_base64"]))
        mad = float(np.mean(np.abs(first.astype(np.int16) - last.astype(np.int16))))
        steps.append(
            {
                "call": f"POST chunks action={action}",
                "seconds": seconds,
                "pose": chunk["pose"],
                "outcome": chunk["outcome"],
                "continuity_mad": mad,
                **facts,
            }
        )
        last = new_last
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(last).save(args.out.with_suffix(".last.png"))
    args.out.write_text(json.dumps({"url": args.url, "steps": steps}, indent=2))
    for s in steps:
        print(
            f"{s['call']:<28} {s['seconds']:6.2f}s  {s['pose']:<16} {s['frames']} frames "
            f"{s['width']}x{s['height']} {s['fps']:.0f} fps {s['codec']}/{s['pix_fmt']}"
            + (
                f"  first-vs-parent-last MAD {s['continuity_mad']:.2f}"
                if "continuity_mad" in s
                else ""
            )
        )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
