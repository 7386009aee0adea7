"""Step e's helpers (orchestrator.core.plan_speculate); the step itself is checked through
``plan()`` against the plain algorithm in test_plan."""

from __future__ import annotations

from orchestrator.core.plan_speculate import _Taken


def test_taken_is_the_union_of_running_and_demanded_keys() -> None:
    running = {("m", "a", "w-31"): 1, ("m", "b", "w-31"): 2}
    demanded = frozenset({("m", "b", "w-31"), ("m", "c", "a-31")})
    taken = _Taken(running, demanded)
    assert ("m", "a", "w-31") in taken and ("m", "c", "a-31") in taken
    assert ("m", "d", "w-31") not in taken
    assert set(taken) == running.keys() | demanded
    assert len(taken) == 3
