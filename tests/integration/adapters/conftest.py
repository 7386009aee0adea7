"""Local stand-ins for the production APIs: real HTTP servers on 127.0.0.1, real client libraries.

Each test module builds a small FastAPI app speaking one API's wire format (Anthropic messages,
ElevenLabs sound generation, Supabase Storage REST) and serves it with uvicorn in a background
thread on a free port; the adapters are pointed at it through their base URL. Nothing leaves the
machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn


class StubServer:
    """A uvicorn server running ``app`` in a daemon thread; ``url`` is its http://127.0.0.1:port."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("stand-in server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """``serve(app)`` starts ``app`` on a free local port and returns its base URL."""
    servers: list[StubServer] = []

    def start(app: Any) -> str:
        server = StubServer(app)
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A base URL nothing listens on (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
