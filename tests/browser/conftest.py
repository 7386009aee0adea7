"""Browser tests: a real ``rewind serve`` subprocess and Debian's Chromium driven by Playwright.

The service runs as it would for a user (``python -m orchestrator serve`` on a free port) on the
test's database and data folder, with small chunks (33 frames, 320x180, root pose ``w-8``) and
the ``markov`` policy. Chromium is the system one (``/usr/bin/chromium``, apt package
``chromium``); Playwright never downloads a browser here. Without it the tests are skipped.

Screenshots and downloads go to ``test-artifacts/browser/`` (gitignored).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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
FRAMES = 33
WIDTH, HEIGHT = 320, 180


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the web pages in headless Chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A ``rewind serve`` subprocess; its output goes to ``log`` (shown when a test fails).

    It runs as a user runs it: in ``folder`` as the working directory, on the default relative
    data folder ``.rewind/`` (so blobs live under ``folder/.rewind/blobs``).
    """

    def __init__(self, database_url: str, folder: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REWIND_GENERATION__FRAMES": str(FRAMES),
            "REWIND_GENERATION__WIDTH": str(WIDTH),
            "REWIND_GENERATION__HEIGHT": str(HEIGHT),
            "REWIND_GENERATION__ROOT_POSE": "w-8",
            "REWIND_SPECULATION__POLICY": "markov",
            "REWIND_SPECULATION__THINK_S": "1.0",
            "REWIND_GPU__DELAY_S": "0.4",
            "REWIND_GPU__MAX_CONTAINERS": "3",
            "REWIND_LOG__LEVEL": "warning",
        }
        env.pop("REWIND_CONFIG", None)
        env.pop("REWIND_SERVER__DATA_DIR", None)
        self.data_dir = folder / ".rewind"
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve", "--port", str(self.port)],
            env=env,
            cwd=folder,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rewind serve exited early:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rewind serve did not answer within 60 s:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


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
