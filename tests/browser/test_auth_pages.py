"""The pages with ``[auth] mode = "supabase"``: the token field, Bearer on every fetch, signed
media URLs for <video>, a signed SSE URL for EventSource, and 401 / 403 shown in words.

A real ``rewind serve`` checks real HS256 tokens (the legacy Supabase secret) signed here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.authutil import HS_SECRET, ISSUER, claims, sign_hs
from tests.browser.conftest import Server
from tests.browser.test_player import PLAYING
from tests.conftest import photo_jpeg

pytestmark = pytest.mark.browser

OPERATOR = "dashboard-operator-token-0123456789"


@pytest.fixture
def auth_server(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    env = {
        "REWIND_AUTH__MODE": "supabase",
        "REWIND_AUTH__JWT_SECRET": HS_SECRET,
        "REWIND_AUTH__ISSUER": ISSUER,
        "REWIND_AUTH__OPERATOR_TOKEN": OPERATOR,
    }
    srv = Server(database_url, data_dir, tmp_path / "serve.log", extra_env=env)
    try:
        yield srv
    finally:
        srv.stop()


async def _page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.set_default_timeout(20_000)
    return context, page, errors


async def _set_token(page: Any, token: str) -> None:
    await page.fill("#token-input", token)
    await page.dispatch_event("#token-input", "change")


async def test_player_sends_the_token(
    browser: Any, auth_server: Server, tmp_path: Path, artifacts: Path
) -> None:
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(photo_jpeg("chelsea"))
    context, page, errors = await _page(browser)
    try:
        await page.goto(auth_server.url + "/")
        # No token: the API's 401 is shown in words.
        await page.set_input_files("#photo-input", str(photo))
        await page.click("#start-button")
        await page.wait_for_selector("#error:not([hidden])")
        assert "401" in await page.inner_text("#error-detail")
        await page.click("#error-close")

        await _set_token(page, sign_hs(claims(uuid.uuid4())))
        await page.click("#start-button")
        await page.wait_for_function(PLAYING, arg=None)
        src = await page.eval_on_selector("video.chunk-video.active", "v => v.getAttribute('src')")
        assert src.startswith("/api/chunks/") and "?sig=" in src  # <video> cannot send headers
        await page.wait_for_function("document.getElementById('live-dot').textContent === 'live'")
        await page.keyboard.press("w")
        await page.wait_for_function("document.querySelectorAll('#step-log tr').length === 2")
        await page.wait_for_function(PLAYING, arg=src)
        await page.screenshot(path=str(artifacts / "player-auth.png"))
        # The token is kept for the next visit.
        await page.reload()
        assert await page.input_value("#token-input")
        assert errors == []
    finally:
        await context.close()


async def test_dashboard_needs_the_operator(browser: Any, auth_server: Server) -> None:
    context, page, errors = await _page(browser)
    try:
        await page.goto(auth_server.url + "/dashboard?refresh=1")
        await page.wait_for_selector('#chart-policy[data-state="error"]')
        await _set_token(page, sign_hs(claims(uuid.uuid4())))  # a user, not an operator
        await page.wait_for_function(
            "document.getElementById('error-detail').textContent.includes('operator')"
        )
        await _set_token(page, OPERATOR)
        await page.wait_for_selector('#chart-gpu[data-state="ok"]')
        await page.wait_for_function(  # no request yet: the chart is empty, no longer refused
            "['ok', 'empty'].includes(document.getElementById('chart-policy').dataset.state)"
        )
        await page.wait_for_selector("#error", state="hidden")
        assert errors == []
    finally:
        await context.close()
