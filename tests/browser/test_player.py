"""The player in headless Chromium: upload a real photo, steer with keys and the joystick.

Checks: the first chunk plays; W, a W+→ chord and a joystick click each take one step whose
outcome badge and wait appear in the step log; the next chunk plays back to back (the visible
<video>'s src changes and it has data); the tree map follows the cursor (parent and children,
updated live from the SSE stream); the journey downloads as one MP4 of every step's frames; an
API error is shown in words.
"""

from __future__ import annotations

import base64
import io
import uuid
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from tests.browser.conftest import FRAMES, HEIGHT, WIDTH, Server
from tests.conftest import photo_jpeg

pytestmark = pytest.mark.browser

PLAYING = """(previous) => {
  const v = document.querySelector('video.chunk-video.active');
  return v && v.getAttribute('src') && v.getAttribute('src') !== previous
    && v.readyState >= 2 && (!v.paused || v.ended || v.currentTime > 0);
}"""


DROP = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], 'dropped.jpg', {type: 'image/jpeg'}));
  const zone = document.getElementById('drop-zone');
  const init = {dataTransfer: data, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent('dragover', init));
  zone.dispatchEvent(new DragEvent('drop', init));
}"""


async def _playing_src(page: Any, previous: str | None) -> str:
    await page.wait_for_function(PLAYING, arg=previous)
    src: str = await page.eval_on_selector("video.chunk-video.active", "v => v.getAttribute('src')")
    return src


async def _step(page: Any, steps_before: int, previous_src: str, press: Any) -> dict[str, Any]:
    """Take one step with ``press`` and wait until it is logged and its chunk plays."""
    await press()
    await page.wait_for_function(
        "n => document.querySelectorAll('#step-log tr').length === n", arg=steps_before + 1
    )
    row = page.locator("#step-log tr").first
    outcome = await row.locator(".badge").get_attribute("class")
    chunk_id = await row.get_attribute("data-chunk-id")
    src = await _playing_src(page, previous_src)
    assert src == f"/api/chunks/{chunk_id}/video"
    badge = page.locator("#outcome-badge")
    assert await badge.is_visible()
    assert await badge.get_attribute("data-outcome") in ("hit", "inflight", "miss")
    assert outcome is not None and outcome.split()[-1] in ("hit", "inflight", "miss")
    wait_text = await row.locator("td").nth(3).inner_text()
    assert wait_text.endswith(("ms", " s")), wait_text
    return {"chunk_id": chunk_id, "src": src, "action": await row.locator("td").nth(1).inner_text()}


async def test_walk_through_a_photo(
    page: Any, server: Server, tmp_path: Path, artifacts: Path
) -> None:
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(photo_jpeg("chelsea"))
    try:
        await page.goto(server.url + "/")
        # Dropping a photo on the drop zone previews it and enables Start.
        await page.evaluate(DROP, base64.b64encode(photo.read_bytes()).decode())
        await page.wait_for_selector("#photo-preview:not([hidden])")
        assert await page.is_enabled("#start-button")
        # Choosing it with the file input does the same (this is the photo that is sent).
        await page.set_input_files("#photo-input", str(photo))
        await page.fill("#prompt-input", "a cat on a rug")
        await page.click("#start-button")

        # The first chunk plays; the tree shows it as the cursor; the SSE stream is live.
        src = await _playing_src(page, None)
        root_id = await page.get_attribute("#stage", "data-chunk-id")
        assert src == f"/api/chunks/{root_id}/video"
        memory_id = await page.get_attribute("#stage", "data-memory-id")
        await page.wait_for_selector(f'#tree-map g.node.cursor[data-chunk-id="{root_id}"]')
        await page.wait_for_function("document.getElementById('live-dot').textContent === 'live'")

        # W: one step, the next chunk plays back to back, the tree moves to it.
        first = await _step(page, 1, src, lambda: page.keyboard.press("w"))
        assert first["action"] == "W"
        await page.wait_for_selector(
            f'#tree-map g.node.cursor[data-chunk-id="{first["chunk_id"]}"]', state="attached"
        )
        parent = page.locator('#tree-map g.node[data-role="parent"]')
        assert await parent.get_attribute("data-chunk-id") == root_id

        # W held + ArrowRight: the two-key action "w+right".
        async def chord() -> None:
            await page.keyboard.down("w")
            await page.keyboard.down("ArrowRight")
            await page.keyboard.up("ArrowRight")
            await page.keyboard.up("w")

        second = await _step(page, 2, first["src"], chord)
        assert second["action"] == "W + →"

        # The on-screen joystick: turn left.
        third = await _step(
            page, 3, second["src"], lambda: page.click('#joystick [data-camera="left"]')
        )
        assert third["action"] == "←"

        # The walk the server recorded matches what the page sent.
        tree = httpx.get(f"{server.url}/api/memories/{memory_id}", timeout=10).json()
        by_id = {c["chunk_id"]: c for c in tree["chunks"]}
        assert by_id[first["chunk_id"]]["action"] == "w"
        assert by_id[second["chunk_id"]]["action"] == "w+right"
        assert by_id[second["chunk_id"]]["parent_chunk_id"] == first["chunk_id"]
        assert by_id[third["chunk_id"]]["action"] == "left"

        # markov speculates the cursor's likely children: they appear live in the tree map.
        await page.keyboard.press("w")
        await page.wait_for_function("document.querySelectorAll('#step-log tr').length === 5")
        await page.wait_for_selector('#tree-map g.node[data-role="child"]', timeout=15_000)
        summary = await page.inner_text("#tree-summary")
        assert summary.startswith("You are at chunk 4"), summary
        await page.screenshot(path=str(artifacts / "player-mid-walk.png"))

        # The journey: one MP4 of every step, downloaded from the page.
        async with page.expect_download() as info:
            await page.click("#journey-button")
        download = await info.value
        saved = artifacts / "journey.mp4"
        await download.save_as(str(saved))
        with av.open(io.BytesIO(saved.read_bytes()), "r") as container:
            stream = container.streams.video[0]
            frames = len(list(container.decode(stream)))
            assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
        assert frames == 5 * FRAMES
        await page.wait_for_function(
            "document.getElementById('journey-status').textContent.startsWith('Saved')"
        )

        # An API error is shown in words: a memory that does not exist.
        missing = uuid.uuid4()
        await page.goto(f"{server.url}/?memory={missing}")
        await page.wait_for_selector("#error:not([hidden])")
        text = await page.inner_text("#error")
        assert "could not be opened" in text and f"no memory {missing}" in text.lower(), text
        assert await page.is_visible("#upload-view")
    except BaseException:
        await page.screenshot(path=str(artifacts / "player-failure.png"))
        print(server.tail())
        raise
    js_errors = [e for e in page.js_errors if "Failed to load resource" not in e]
    assert not js_errors, js_errors
