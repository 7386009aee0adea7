"""Helpers for tests that look inside real MP4s (decoded with PyAV)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image


@dataclass
class Probe:
    """What an MP4 really contains."""

    frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    first: np.ndarray
    last: np.ndarray


def probe(mp4: bytes) -> Probe:
    """Decode every frame of ``mp4`` and report its stream facts and first/last frames (RGB)."""
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return Probe(
            frames=len(frames),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(stream.average_rate or 0),
            codec=stream.codec_context.name,
            pix_fmt=str(stream.codec_context.pix_fmt),
            first=frames[0],
            last=frames[-1],
        )


def png_array(png: bytes) -> np.ndarray:
    """PNG bytes as an RGB array."""
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two same-shape uint8 images (0..255)."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))
