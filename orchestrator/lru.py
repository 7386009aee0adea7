"""A small LRU map with an optional time-to-live per entry (ownership and token caches)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A small LRU map with an optional time-to-live per entry (``clock`` in seconds)."""

    def __init__(
        self, size: int, ttl_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size, self.ttl_s, self._clock = size, ttl_s, clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value, or None when absent or older than ``ttl_s``."""
        item = self._items.get(key)
        if item is None:
            return None
        if self.ttl_s is not None and self._clock() - item[0] > self.ttl_s:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: K, value: V) -> None:
        """Insert or replace, evicting the least recently used entry beyond ``size``."""
        self._items[key] = (self._clock(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        """Entries held (expired ones included until read)."""
        return len(self._items)
