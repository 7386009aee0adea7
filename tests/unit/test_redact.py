"""Server paths are stripped from error details; API paths and URLs are kept."""

from __future__ import annotations

import pytest

from orchestrator.redact import redact_paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[Errno 13] Permission denied: '/srv/rewind/.rewind/blobs/videos/ab/c.mp4'",
            "[Errno 13] Permission denied: '<path>/c.mp4'",
        ),
        ("connect to /tmp/x/pg/.s.PGSQL.5432 failed", "connect to <path>/.s.PGSQL.5432 failed"),
        ("[Errno 20] Not a directory: '/work/a/b'", "[Errno 20] Not a directory: '<path>'"),
        ("GET /api/chunks/1/video is 404", "GET /api/chunks/1/video is 404"),
        ("see http://example.com/a/b", "see http://example.com/a/b"),
        ("ratio 3/4, relative a/b/c", "ratio 3/4, relative a/b/c"),
    ],
)
def test_redact_paths(text: str, expected: str) -> None:
    assert redact_paths(text) == expected
