"""Through the API: a long walk stays sharp, and each chunk still starts at its parent's last frame.

The service's local GPU pool renders every chunk from the memory's photo with the camera
accumulated along the path (``gpu.world``); ``GET /api/chunks/{id}/frame`` is still each chunk's
own last frame, the input of its children.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

STEPS = 12


def _sharpness(rgb: np.ndarray) -> float:
    return float(ndimage.laplace(rgb.astype(np.float64).mean(axis=2)).var())


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _first_frame(mp4: bytes) -> np.ndarray:
    with av.open(io.BytesIO(mp4)) as container:
        frame = next(container.decode(video=0))
        return np.asarray(frame.to_ndarray(format="rgb24"))


async def test_a_long_forward_walk_keeps_its_detail(service_factory: Callable[..., Any]) -> None:
    svc = await service_factory()
    async with client_for(svc) as client:
        r = await client.post(
            "/api/memories?inline=false",
            json={"image_base64": base64.b64encode(photo_jpeg("astronaut")).decode()},
        )
        assert r.status_code == 200, r.text
        memory, session = r.json()["memory_id"], r.json()["session_id"]
        root = r.json()["chunk"]
        root_first = _first_frame((await client.get(root["video_url"])).content)
        parent = root
        for _ in range(STEPS):
            r = await client.post(
                f"/api/memories/{memory}/chunks?inline=false",
                json={"parent_chunk_id": parent["chunk_id"], "action": "w", "session_id": session},
            )
            assert r.status_code == 200, r.text
            child = r.json()["chunk"]
            frame = await client.get(f"/api/chunks/{parent['chunk_id']}/frame")
            parent_last = _png(frame.content)
            child_first = _first_frame((await client.get(child["video_url"])).content)
            # The child's first frame is its parent's last frame, to H.264 coding noise (CRF 23 on
            # a detailed 160x96 view: ~30 dB; a different view of the photo scores far less).
            mse = float(np.mean((child_first.astype(float) - parent_last.astype(float)) ** 2))
            assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 26
            parent = child
        last = _png((await client.get(f"/api/chunks/{parent['chunk_id']}/frame")).content)
        ratio = _sharpness(last) / _sharpness(root_first)
        assert ratio >= 0.5, f"{STEPS} steps forward kept {ratio:.0%} of the root frame's detail"
