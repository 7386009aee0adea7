"""The player's playback controls, the probabilities of speculated branches and the walk's own
hit rate and GPU cost, in headless Chromium against a real ``rewind serve`` (markov policy)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Server
from tests.conftest import photo_jpeg

pytestmark = pytest.mark.browser

ACTIVE = "video.chunk-video.active"


async def _wait_playing(page: Any) -> None:
    await page.wait_for_function(
        f"() => {{ const v = document.querySelector('{ACTIVE}');"
        " return v && v.readyState >= 2 && !v.paused; }"
    )


async def _step(page: Any, n_rows: int) -> None:
    await page.keyboard.press("w")
    await page.wait_for_function(
        "n => document.querySelectorAll('#step-log tr').length === n", arg=n_rows
    )
    await _wait_playing(page)


async def test_controls_probabilities_and_walk_stats(
    page: Any, server: Server, artifacts: Path
) -> None:
    created = httpx.post(
        f"{server.url}/api/memories?inline=false",
        json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        timeout=60,
    ).json()
    try:
        await page.goto(f"{server.url}/?memory={created['memory_id']}")
        await _wait_playing(page)
        session_id = await page.get_attribute("#stage", "data-session-id")

        # Pause and play again.
        await page.click("#play-pause")
        assert await page.eval_on_selector(ACTIVE, "v => v.paused")
        assert await page.get_attribute("#play-pause", "data-state") == "paused"
        # Scrub to the middle of the chunk while paused: the picture follows.
        await page.eval_on_selector(
            "#scrub",
            "r => { r.value = '500'; r.dispatchEvent(new Event('input'));"
            " r.dispatchEvent(new Event('change')); }",
        )
        await page.wait_for_function(
            f"() => {{ const v = document.querySelector('{ACTIVE}');"
            " return Math.abs(v.currentTime - v.duration / 2) < 0.1; }"
        )
        assert "/" in await page.inner_text("#play-time")
        await page.keyboard.press("Space")  # space plays again
        await _wait_playing(page)
        assert await page.get_attribute("#play-pause", "data-state") == "playing"
        # Full screen (the video with these controls, so they stay reachable) and back.
        await page.click("#fullscreen")
        # The button follows the fullscreenchange event, which fires after
        # fullscreenElement is set: wait for both rather than read the button once.
        await page.wait_for_function(
            "document.fullscreenElement === document.getElementById('screen')"
            " && document.getElementById('fullscreen')"
            ".getAttribute('aria-pressed') === 'true'"
        )
        await page.click("#fullscreen")
        await page.wait_for_function(
            "document.fullscreenElement === null"
            " && document.getElementById('fullscreen')"
            ".getAttribute('aria-pressed') === 'false'"
        )

        # Walk: while a chunk plays, the summary never claims that nothing was prepared.
        rows = 1
        for _ in range(3):
            await page.wait_for_timeout(1500)  # markov speculates "w" meanwhile (think 1 s)
            rows += 1
            await _step(page, rows)
            summary = await page.inner_text("#tree-summary")
            assert "Nothing prepared" not in summary, summary

        # Speculated branches carry the policy's probability, in the label and as data.
        child = page.locator('#tree-map g.node[data-role="child"]:not([data-probability=""])')
        await child.first.wait_for(state="attached", timeout=15_000)
        p = float(await child.first.get_attribute("data-probability") or "nan")
        assert 0 < p <= 1
        labels = await page.locator("#tree-map text.node-label").evaluate_all(
            "ts => ts.map(t => t.textContent)"
        )
        assert any(t.endswith("%") for t in labels), labels

        # The walk's hit rate (after the root chunk) and GPU cost match the API's.
        await page.wait_for_function(
            "document.getElementById('walk-stats').dataset.requests === '3'"
        )
        stats = httpx.get(f"{server.url}/api/sessions/{session_id}", timeout=10).json()
        text = await page.inner_text("#walk-stats")
        assert stats["requests"] == 3
        assert f"{round(100 * stats['hit_rate'])}% hits" in text, text
        assert f"{stats['hits']} of 3 steps" in text and "GPU" in text and "$" in text
        assert stats["gpu_seconds"] > 0
        await page.screenshot(path=str(artifacts / "player-controls.png"))
    except BaseException:
        await page.screenshot(path=str(artifacts / "player-controls-failure.png"))
        print(server.tail())
        raise
    js_errors = [e for e in page.js_errors if "Failed to load resource" not in e]
    assert not js_errors, js_errors
