"""UUIDs on the hit path without the stdlib's per-call cost (issue 10).

The live state speaks plain string ids; the shell, the write-behind rows and the response speak
``uuid.UUID``. A hit converted the same few ids both ways several times (``uuid.UUID(text)`` is
~3 us, ``str(u)`` ~1 us, ``uuid.uuid4()`` ~4 us on CPython 3.11): on a saturated service that was
a few per cent of a hit's CPU. ``IdCache`` remembers the conversions of ids seen recently (the
ready chunks and the sessions being served), and ``new_uuid4`` builds a random version-4 UUID
as ``uuid.uuid4`` does (same ``os.urandom`` bits, same version and variant) without running
``UUID.__init__``'s argument checks.
"""

from __future__ import annotations

import os
import uuid

_new = uuid.UUID.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown
_VERSION_MASK = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4 = (0x8000 << 48) | (4 << 76)


def from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a ``value`` already known to be in [0, 2**128)."""
    u = _new(uuid.UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _UNKNOWN)
    return u


def new_uuid4() -> uuid.UUID:
    """A random UUID, equal to what ``uuid.uuid4()`` makes from the same 16 random bytes."""
    return from_int((int.from_bytes(os.urandom(16), "big") & _VERSION_MASK) | _VERSION_4)


class IdCache:
    """Text <-> ``uuid.UUID`` conversions of recently seen ids, at most ``limit`` of each (the
    tables are emptied when full, so memory stays bounded whatever ids pass through).

    ``parse`` raises ValueError on a malformed id, as ``uuid.UUID`` does.
    """

    def __init__(self, limit: int = 16_384) -> None:
        self.limit = limit
        self._parsed: dict[str, uuid.UUID] = {}
        self._texts: dict[uuid.UUID, str] = {}

    def parse(self, text: str) -> uuid.UUID:
        """``uuid.UUID(text)``, from the table when ``text`` was parsed recently."""
        found = self._parsed.get(text)
        if found is None:
            found = uuid.UUID(text)
            if len(self._parsed) >= self.limit:
                self._parsed.clear()
            self._parsed[text] = found
        return found

    def parse_opt(self, text: str | None) -> uuid.UUID | None:
        """``parse``, None for None."""
        return None if text is None else self.parse(text)

    def text(self, value: uuid.UUID) -> str:
        """``str(value)``, from the table when ``value`` was formatted recently."""
        found = self._texts.get(value)
        if found is None:
            found = str(value)
            if len(self._texts) >= self.limit:
                self._texts.clear()
            self._texts[value] = found
        return found
