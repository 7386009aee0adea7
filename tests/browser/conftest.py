"""Browser tests: a real ``rewind serve`` subprocess and Debian's Chromium driven by Playwright.

The service runs as it would for a user (``python -m orchestrator serve`` on a free port) on the
test's database and data folder, with small chunks (33 frames, 320x180, root pose ``w-8``) and
the ``markov`` policy. Chromium is the system one (``/usr/bin/chromium``, apt package
``chromium``); Playwright never downloads a browser here. Without it the tests are skipped.

Screenshots and downloads go to ``test-artifacts/browser/`` (gitignored).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import FRAMES, HEIGHT, WIDTH, Server

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
__all__ = ["FRAMES", "HEIGHT", "WIDTH", "Server"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web pages in headless Chromium")


@pytest.fixture
def server(database_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Server]:
    """The service on the test's database and default data folder, stopped after the test."""
    srv = Server(database_url, data_dir, tmp_path / "serve.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium (skips the test when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.skip("playwright is not installed (uv sync installs the dev group)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Any, server: Server) -> AsyncIterator[Any]:
    """A fresh browser context and page; JavaScript errors are collected in ``page.js_errors``."""
    context = await browser.new_context(
        viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    pg = await context.new_page()
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console.{msg.type}: {msg.text}")

    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    pg.on("console", on_console)
    pg.js_errors = errors
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        await context.close()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots and downloads are kept (``test-artifacts/browser``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
