"""SortedKeys (orchestrator.core.sorted_keys) against a plain sorted list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.sorted_keys import SortedKeys


class _TinyKeys(SortedKeys):
    LOAD = 2  # sublists split at 5 keys: the tests reach splits and emptied sublists
    __slots__ = ()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=120))
def test_sorted_keys_keep_the_order_of_a_sorted_list(ops: list[tuple[bool, int]]) -> None:
    keys, plain = _TinyKeys(), []
    for add, n in ops:
        key = ("m", f"p{n:02d}", "q")
        if add and key not in plain:
            keys.add(key)
            plain.append(key)
        elif not add and key in plain:
            keys.remove(key)
            plain.remove(key)
        plain.sort()
        assert list(keys) == plain and len(keys) == len(plain)
        if plain:
            assert keys.first() == plain[0]
