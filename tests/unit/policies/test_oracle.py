"""OraclePolicy: the true future with P = 1, every prefix; simulation only."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, SessionView
from policies import make_policy
from policies.base import Policy
from policies.oracle import OraclePolicy

FUTURE = {"s1": ["w", "w", "right", "a", "s+up"], "s2": ["left"]}


def make_ctx(
    history: Sequence[str] = (),
    *,
    session_id: str = "s1",
    actions: Sequence[str] = ACTION_NAMES,
    max_depth: int = 3,
) -> PolicyContext:
    session = SessionView(session_id, "m1", "c0", 0.0, 0.0, tuple(history), "oracle")
    return PolicyContext(session, (), {}, tuple(actions), max_depth, 0.0)


def paths(policy: OraclePolicy, ctx: PolicyContext) -> list[tuple[str, ...]]:
    proposals = policy.propose(ctx)
    assert all(p.probability == 1.0 and p.session_id == ctx.session.session_id for p in proposals)
    return [p.path for p in proposals]


def test_proposes_the_true_path_and_all_prefixes() -> None:
    policy = OraclePolicy(FUTURE)
    assert isinstance(policy, Policy)
    assert policy.name == "oracle"
    assert paths(policy, make_ctx()) == [("w",), ("w", "w"), ("w", "w", "right")]
    assert paths(policy, make_ctx(("w", "w"))) == [
        ("right",),
        ("right", "a"),
        ("right", "a", "s+up"),
    ]


def test_uses_the_history_length() -> None:
    policy = OraclePolicy(FUTURE)
    assert paths(policy, make_ctx(("x", "y", "z", "q"), max_depth=1)) == [("s+up",)]


def test_depth_limits() -> None:
    assert paths(OraclePolicy(FUTURE), make_ctx(max_depth=1)) == [("w",)]
    assert paths(OraclePolicy(FUTURE), make_ctx(max_depth=0)) == []
    assert paths(OraclePolicy(FUTURE, depth=2), make_ctx(max_depth=5)) == [("w",), ("w", "w")]


def test_end_of_trace_and_unknown_session() -> None:
    policy = OraclePolicy(FUTURE)
    assert paths(policy, make_ctx(("w",) * 4)) == [("s+up",)]
    assert paths(policy, make_ctx(("w",) * 5)) == []
    assert paths(policy, make_ctx(session_id="nobody")) == []


def test_stops_before_an_action_not_offered_and_respells() -> None:
    policy = OraclePolicy(FUTURE)
    ctx = make_ctx(("w", "w", "right"), actions=("a", "W"))
    assert paths(policy, ctx) == [("a",)]
    assert paths(OraclePolicy({"s1": ["up+s"]}), make_ctx(actions=("s+up",))) == [("s+up",)]


def test_observe_is_a_no_op() -> None:
    policy = OraclePolicy(FUTURE)
    policy.observe(ActionObserved("s1", "m1", (), "d"))
    assert paths(policy, make_ctx(max_depth=1)) == [("w",)]


def test_without_future_it_says_simulation_only() -> None:
    with pytest.raises(ValueError, match="simulation-only"):
        OraclePolicy()
    with pytest.raises(ValueError, match="simulation-only"):
        make_policy("oracle")
    built = make_policy("oracle", {"future": FUTURE})
    assert [p.path for p in built.propose(make_ctx(max_depth=1))] == [("w",)]


@pytest.mark.parametrize(
    "params",
    [
        {"future": ["w"]},
        {"future": {"s1": "wasd"}},
        {"future": {"s1": [1, 2]}},
        {"future": {1: ["w"]}},
        {"future": FUTURE, "depth": 0},
    ],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OraclePolicy(**params)  # type: ignore[arg-type]


def test_a_future_told_on_arrival_is_the_future_given_up_front() -> None:
    told = OraclePolicy({})
    assert paths(told, make_ctx()) == []  # not arrived yet: nothing known
    for sid, actions in FUTURE.items():
        told.foresee(sid, actions)
    given = OraclePolicy(FUTURE)
    for ctx in (make_ctx(), make_ctx(("w", "w")), make_ctx(session_id="s2")):
        assert told.propose(ctx) == given.propose(ctx)
    told.forget_session("s1")
    assert paths(told, make_ctx()) == []
    for bad in (("s3", "w"), ("s3", [1]), (3, ["w"])):
        with pytest.raises(ValueError, match="future must map"):
            told.foresee(*bad)  # type: ignore[arg-type]
