"""UniformPolicy: the seed's fixed 2-4 branches, each with P = 1 / k, history ignored."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, SessionView
from policies.base import Policy
from policies.uniform import DEFAULT_PREFERENCE, UniformPolicy


def make_ctx(
    history: Sequence[str] = (),
    *,
    actions: Sequence[str] = ACTION_NAMES,
    max_depth: int = 2,
    session_id: str = "s1",
) -> PolicyContext:
    session = SessionView(session_id, "m1", "c0", 0.0, 0.0, tuple(history), "uniform")
    return PolicyContext(session, (), {}, tuple(actions), max_depth, 0.0)


def test_default_is_three_preferred_actions_at_one_third() -> None:
    policy = UniformPolicy()
    assert isinstance(policy, Policy)
    assert policy.name == "uniform"
    proposals = policy.propose(make_ctx())
    assert [p.path for p in proposals] == [("w",), ("left",), ("right",)]
    assert all(p.probability == pytest.approx(1 / 3) for p in proposals)
    assert all(p.session_id == "s1" for p in proposals)
    assert sum(p.probability for p in proposals) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_k_first_preferences(k: int) -> None:
    proposals = UniformPolicy(k=k).propose(make_ctx())
    assert [p.path[0] for p in proposals] == list(DEFAULT_PREFERENCE[:k])
    assert {p.probability for p in proposals} == {1 / k}


def test_custom_preference_and_only_offered_actions() -> None:
    policy = UniformPolicy(k=3, actions=["up", "w+right", "down", "s"])
    ctx = make_ctx(actions=("w", "s", "down", "w+right"))
    assert [p.path for p in policy.propose(ctx)] == [("w+right",), ("down",), ("s",)]


def test_fewer_offered_than_k_keeps_one_over_k() -> None:
    proposals = UniformPolicy(k=4).propose(make_ctx(actions=("right", "w")))
    assert [p.path for p in proposals] == [("w",), ("right",)]
    assert {p.probability for p in proposals} == {0.25}


def test_spelling_follows_ctx_actions() -> None:
    policy = UniformPolicy(k=1, actions=["Right+W"])
    assert [p.path for p in policy.propose(make_ctx(actions=("w + right",)))] == [("w + right",)]


def test_ignores_history_and_observations() -> None:
    policy = UniformPolicy()
    before = policy.propose(make_ctx())
    for _ in range(5):
        policy.observe(ActionObserved("s1", "m1", ("s", "s"), "s"))
    assert policy.propose(make_ctx(("s", "s", "s"))) == before


def test_depth_zero_proposes_nothing() -> None:
    assert UniformPolicy().propose(make_ctx(max_depth=0)) == []


@pytest.mark.parametrize(
    "params",
    [{"k": 0}, {"k": 2.0}, {"k": True}, {"actions": []}, {"actions": "wasd"}, {"actions": [1]}],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UniformPolicy(**params)  # type: ignore[arg-type]
