"""Server paths never leave the server: strip them from error details before they are sent.

Errors from storage, ffmpeg or the database quote absolute file names (``[Errno 13] Permission
denied: '/srv/rewind/.rewind/blobs/videos/…'``, a socket path). A client needs to know *what*
failed, not where the service keeps its files, so every absolute path in an error detail becomes
``<path>`` (its last component kept when it names a file, e.g. ``<path>/x.mp4``). URL paths of
this API (``/api/...``) are kept: they are what the client sent.
"""

from __future__ import annotations

import re

# An absolute POSIX path of two components or more, not preceded by a word character, a dot,
# a slash or a colon (so "http://host/x" and "a/b" are left alone) and not an /api/ URL path.
_ABS_PATH = re.compile(r"(?<![\w.:/])/(?!api/)(?:[\w.@+-]+/)+([\w.@+-]*)")


def redact_paths(text: str) -> str:
    """``text`` with absolute server paths replaced by ``<path>`` (file names kept)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        return f"<path>/{name}" if "." in name else "<path>"

    return _ABS_PATH.sub(repl, text)
