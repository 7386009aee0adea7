"""H.264 encoding of model frames, shared by the Modal container's pipelines.

Same encoding as the CPU renderer (``gpu.render``): libx264 yuv420p, CRF 23, a keyframe every 24
frames and no scene-cut keyframes (DESIGN.md: a seek then reaches the last frame in ~10 ms),
``+faststart``. The last frame is saved as PNG from the array, never re-decoded from the MP4.
"""

from __future__ import annotations

import io
import tempfile
import time
from typing import Any

import av
import numpy as np
from PIL import Image

from gpu.render import CRF, GOP_FRAMES, PRESET, RenderOutput


def encode_chunk(
    rgb: list[Any], width: int, height: int, fps: int, timings: dict[str, float]
) -> RenderOutput:
    """Encode RGB uint8 frames (H x W x 3) as H.264 MP4; the last frame as PNG from the array.

    Frames of another size are resized to ``width`` x ``height`` (the CPU renderer's callers;
    ``WorldPlayPipeline`` refuses a size mismatch before it gets here). ``timings`` gains
    ``encode`` and ``png`` seconds.
    """
    t0 = time.perf_counter()
    if rgb[0].shape[:2] != (height, width):
        resample = Image.Resampling.LANCZOS
        rgb = [np.asarray(Image.fromarray(f).resize((width, height), resample)) for f in rgb]
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        with av.open(tmp.name, "w", container_options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps, options={
                "crf": str(CRF), "preset": PRESET,
                "x264-params": f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0",
            })  # fmt: skip
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, frame in enumerate(rgb):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = index
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))
        mp4 = tmp.read()
    timings["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    png = io.BytesIO()
    Image.fromarray(rgb[-1]).save(png, format="PNG", compress_level=3)
    timings["png"] = time.perf_counter() - t0
    return RenderOutput(mp4, png.getvalue(), len(rgb), width, height, timings)
