"""``SortedKeys``: the keys of one run of ``votes.VoteIndex`` in key order (pure)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator

from orchestrator.core.tree import Key


class SortedKeys:
    """The keys of one run in key order, as sublists of at most ``2 * LOAD`` keys.

    A run can hold 10^4 keys (every session of a policy that gives the same P at the same
    depth and need time): a plain sorted list then moves ~80 KB of pointers on every insert
    and delete, ~10 us each, several times per re-resolved session. Here both cost a bisect
    over the sublists' last keys and one over a sublist (O(log n + LOAD)).
    """

    LOAD = 256
    __slots__ = ("_len", "_lists", "_maxes")

    def __init__(self) -> None:
        self._lists: list[list[Key]] = []
        self._maxes: list[Key] = []  # the last key of each sublist
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: Key) -> None:
        """Insert ``key`` (not present) in order."""
        lists, maxes = self._lists, self._maxes
        self._len += 1
        if not maxes:
            lists.append([key])
            maxes.append(key)
            return
        i = bisect.bisect_left(maxes, key)
        if i == len(maxes):
            i -= 1
        sub = lists[i]
        bisect.insort(sub, key)
        maxes[i] = sub[-1]
        if len(sub) > 2 * self.LOAD:
            half = sub[self.LOAD :]
            del sub[self.LOAD :]
            maxes[i] = sub[-1]
            lists.insert(i + 1, half)
            maxes.insert(i + 1, half[-1])

    def remove(self, key: Key) -> None:
        """Delete ``key`` (present)."""
        lists, maxes = self._lists, self._maxes
        i = bisect.bisect_left(maxes, key)
        sub = lists[i]
        del sub[bisect.bisect_left(sub, key)]
        self._len -= 1
        if sub:
            maxes[i] = sub[-1]
        else:
            del lists[i]
            del maxes[i]

    @property
    def lists(self) -> list[list[Key]]:
        """The sublists, in order, none empty (read-only: for hot loops that iterate them)."""
        return self._lists

    def first(self) -> Key:
        """The smallest key (the run is not empty)."""
        return self._lists[0][0]

    def __iter__(self) -> Iterator[Key]:
        lists = self._lists
        return iter(lists[0]) if len(lists) == 1 else itertools.chain.from_iterable(lists)
