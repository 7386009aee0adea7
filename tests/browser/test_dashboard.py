"""The dashboard in headless Chromium, after a walk scripted through the HTTP API.

Checks: every chart draws bars from the analytics API (outcomes by policy/arm, depth and action;
branch hit rate; waits; waste), the GPU card shows slots by kind, the policy and config panels
show the active configuration, the page refreshes live (a new request shows up without a
reload), and an analytics endpoint that answers 404 is reported in words.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Server
from tests.conftest import photo_jpeg

pytestmark = pytest.mark.browser

CHARTS = ("chart-policy", "chart-branch", "chart-action", "chart-waits")
TIME_CHARTS = ("chart-hitrate-time", "chart-waits-time", "chart-gpu-time")


def _walk(url: str, actions: tuple[str, ...], think_s: float) -> str:
    """Create a memory and take ``actions`` (pausing ``think_s`` between steps); session id."""
    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.post(
            "/api/memories?inline=false",
            json={"image_base64": base64.b64encode(photo_jpeg()).decode()},
        )
        assert r.status_code == 200, r.text
        memory_id, session_id = r.json()["memory_id"], r.json()["session_id"]
        parent = r.json()["chunk"]["chunk_id"]
        for action in actions:
            time.sleep(think_s)
            r = client.post(
                f"/api/memories/{memory_id}/chunks?inline=false",
                json={"parent_chunk_id": parent, "action": action, "session_id": session_id},
            )
            assert r.status_code == 200, r.text
            parent = r.json()["chunk"]["chunk_id"]
        return str(session_id)


async def _rows(page: Any, chart: str) -> int:
    return int(await page.get_attribute(f"#{chart}", "data-rows") or 0)


async def test_dashboard_draws_the_analytics(page: Any, server: Server, artifacts: Path) -> None:
    _walk(server.url, ("w", "w", "w", "d", "w"), think_s=1.2)
    try:
        await page.goto(server.url + "/dashboard?refresh=1")
        for chart in (*CHARTS, *TIME_CHARTS, "chart-waste", "chart-gpu"):
            await page.wait_for_selector(f'#{chart}[data-state="ok"]')
            assert await _rows(page, chart) >= 1, chart
        # Bars are drawn, with the outcome colours; the action chart names the actions walked.
        assert await page.locator("#chart-policy rect.bar.hit").count() >= 1
        assert await page.locator("#chart-policy rect.bar.miss").count() >= 1
        actions = await page.locator("#chart-action g.bar-row").evaluate_all(
            "gs => gs.map(g => g.dataset.label)"
        )
        assert {"w", "d"} <= set(actions), actions
        assert await page.locator("#chart-waits rect.bar.p95").count() >= 1
        assert await page.locator("#chart-waste rect.bar.waste").count() >= 1
        assert await page.locator("#chart-gpu rect.bar").count() >= 1
        assert (await page.inner_text("#policy-name")).strip() == "markov"

        # Over time: points on a real time axis (ISO times within this test's run).
        started = time.time() - 600
        for chart, mark in (("chart-hitrate-time", "circle.point.hit"),
                            ("chart-waits-time", "circle.point.p95"),
                            ("chart-gpu-time", "rect.bar.demand")):  # fmt: skip
            assert await page.locator(f"#{chart} {mark}").count() >= 1, chart
            stamps = await page.locator(f"#{chart} text.tick.time").evaluate_all(
                "ts => ts.map(t => Date.parse(t.dataset.time) / 1000)"
            )
            assert len(stamps) >= 2 and all(started < t < time.time() + 600 for t in stamps)
            assert stamps == sorted(stamps)
        assert await page.locator("#chart-gpu-time rect.bar.speculative").count() >= 1

        # The headline counts the 5 steps, not the root chunk the walk started with.
        series = httpx.get(f"{server.url}/api/analytics/timeseries", timeout=10).json()
        assert series["totals"]["requests"] == 5 and series["totals"]["roots"] == 1
        await page.wait_for_function(
            "document.querySelector('#totals .stat dd') && "
            "Number(document.querySelector('#totals .stat dd').textContent) === 5"
        )
        hit = await page.inner_text("#totals .stat.hit dd")
        assert hit == f"{round(100 * series['totals']['hit_rate'])}%", hit
        before = int(await page.inner_text("#totals .stat dd"))

        # The configuration is collapsed until asked for.
        assert not await page.eval_on_selector("#config-panel", "d => d.open")
        assert not await page.is_visible('#config details[data-section="speculation"]')
        await page.click("#config-panel > summary")
        await page.click('#config details[data-section="speculation"] > summary')
        speculation = await page.inner_text('#config details[data-section="speculation"]')
        assert "markov" in speculation

        # Live: a new request shows up without reloading the page.
        _walk(server.url, ("a",), think_s=0)
        await page.wait_for_function(
            "n => Number(document.querySelector('#totals .stat dd').textContent) > n", arg=before
        )
        await page.wait_for_selector('#chart-action g.bar-row[data-label="a"]')
        await page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

        # An analytics endpoint that is missing is reported in words, not left blank.
        await page.route(
            "**/api/analytics/waste*",
            lambda route: route.fulfill(
                status=404,
                content_type="application/json",
                body='{"error": "not_found", "detail": "Not Found", "field": null}',
            ),
        )
        await page.reload()
        await page.wait_for_selector('#chart-waste[data-state="unavailable"]')
        text = await page.inner_text("#chart-waste")
        assert "analytics API is not available" in text and "/api/analytics/waste" in text, text
        await page.wait_for_selector('#chart-policy[data-state="ok"]')  # the rest still draws
    except BaseException:
        await page.screenshot(path=str(artifacts / "dashboard-failure.png"), full_page=True)
        print(server.tail())
        raise
    js_errors = [e for e in page.js_errors if "Failed to load resource" not in e]
    assert not js_errors, js_errors
