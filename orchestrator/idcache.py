"""Text <-> UUID conversions of the ids a hit repeats (issue 10).

The live state speaks plain string ids; the shell, the write-behind rows and the response speak
``uuid.UUID``. A hit converted the same few ids both ways several times (``uuid.UUID(text)`` is
~3 us, ``str(u)`` ~1 us on CPython 3.11): on a saturated service that was a few per cent of a
hit's CPU. ``IdCache`` remembers the conversions of ids seen recently (the ready chunks and the
sessions being served) in two of the project's bounded ``Lru`` maps.
"""

from __future__ import annotations

import uuid

from orchestrator.lru import Lru


class IdCache:
    """Text <-> ``uuid.UUID`` conversions of recently seen ids, at most ``limit`` of each (least
    recently used dropped first, so memory stays bounded whatever ids pass through).

    ``parse`` raises ValueError on a malformed id, as ``uuid.UUID`` does.
    """

    def __init__(self, limit: int = 16_384) -> None:
        self.limit = limit
        self._parsed: Lru[str, uuid.UUID] = Lru(limit)
        self._texts: Lru[uuid.UUID, str] = Lru(limit)

    def parse(self, text: str) -> uuid.UUID:
        """``uuid.UUID(text)``, from the table when ``text`` was parsed recently."""
        found = self._parsed.get(text)
        if found is None:
            found = uuid.UUID(text)
            self._parsed.put(text, found)
        return found

    def parse_opt(self, text: str | None) -> uuid.UUID | None:
        """``parse``, None for None."""
        return None if text is None else self.parse(text)

    def text(self, value: uuid.UUID) -> str:
        """``str(value)``, from the table when ``value`` was formatted recently."""
        found = self._texts.get(value)
        if found is None:
            found = str(value)
            self._texts.put(value, found)
        return found
