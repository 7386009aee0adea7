"""/docs and /redoc in headless Chromium with the network cut off beyond loopback: Swagger UI and
ReDoc come from the service itself, and show the API by area with the real error model."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import Server

pytestmark = pytest.mark.browser


async def _offline(page: Any) -> list[str]:
    """Abort every request that would leave the machine; return those the page needs to work
    (documents, scripts, styles, fonts, data). Images are aborted too but not listed: ReDoc's
    sidebar always asks its CDN for the Redocly logo and hides it when that fails."""
    outside: list[str] = []

    async def handle(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            if route.request.resource_type != "image":
                outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", handle)
    return outside


async def test_swagger_ui_and_redoc_render_offline(
    page: Any, server: Server, artifacts: Path
) -> None:
    outside = await _offline(page)
    try:
        await page.goto(server.url + "/docs")
        # One section per area, operations named by what they do.
        await page.wait_for_selector(".swagger-ui .opblock-tag-section")
        tags = await page.locator(".opblock-tag").evaluate_all(
            "els => els.map(e => e.getAttribute('data-tag'))"
        )
        assert {"memories", "chunks", "sessions", "media", "analytics", "admin"} <= set(tags)
        assert "default" not in tags
        chunk = page.locator("#operations-chunks-post_chunk")
        await chunk.locator(".opblock-summary").click()
        await page.wait_for_selector("#operations-chunks-post_chunk .responses-table")
        codes = await chunk.locator(".responses-table tr.response").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-code'))"
        )
        assert {"200", "404", "409", "413", "422", "502"} <= set(codes), codes
        body = await chunk.locator('tr.response[data-code="422"]').inner_text()
        assert "detail" in body and "field" in body and "HTTPValidationError" not in body
        await page.screenshot(path=str(artifacts / "docs-swagger.png"), full_page=False)

        await page.goto(server.url + "/redoc")
        await page.wait_for_selector("[data-section-id='tag/chunks']", state="attached")
        await page.wait_for_selector("[data-section-id='operation/post_chunk']", state="attached")
        await page.screenshot(path=str(artifacts / "docs-redoc.png"), full_page=False)
    except BaseException:
        await page.screenshot(path=str(artifacts / "docs-failure.png"))
        print(server.tail())
        raise
    assert outside == [], f"the docs tried to load from outside: {outside}"
    js_errors = [e for e in page.js_errors if "Failed to load resource" not in e]
    assert not js_errors, js_errors
