"""LookaheadPolicy: beam search over a base predictor, joint probabilities, depth limits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, NodeState, PolicyContext, Proposal, SessionView
from policies.base import Policy
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from policies.uniform import UniformPolicy

ACTIONS = ("w", "a", "d")
# P(next | last action); the empty history behaves like "w".
TABLE = {
    "w": {"w": 0.6, "a": 0.3, "d": 0.1},
    "a": {"a": 0.5, "w": 0.4, "d": 0.1},
    "d": {"d": 0.7, "w": 0.2, "a": 0.1},
}


class TableModel:
    """A fixed first-order model offering next_action_probabilities; records what it is asked."""

    name = "table"

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []
        self.observed: list[ActionObserved] = []

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        self.asked.append(history)
        row = TABLE[history[-1] if history else "w"]
        return {a: row[a] for a in ctx.actions if a in row}

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        dist = self.next_action_probabilities(ctx, ctx.session.history)
        return [Proposal(ctx.session.session_id, (a,), p) for a, p in dist.items()]

    def observe(self, event: ActionObserved) -> None:
        self.observed.append(event)


class RecordingUniform(UniformPolicy):
    """A base without next_action_probabilities: asked through propose(); records the contexts."""

    def __init__(self) -> None:
        super().__init__(k=2, actions=["w", "left"])
        self.seen: list[tuple[tuple[str, ...], dict[str, NodeState], int]] = []

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        self.seen.append((ctx.session.history, dict(ctx.children), ctx.max_depth))
        return super().propose(ctx)


def make_ctx(
    history: Sequence[str] = (),
    *,
    actions: Sequence[str] = ACTIONS,
    max_depth: int = 5,
    children: dict[str, NodeState] | None = None,
    session_id: str = "s1",
) -> PolicyContext:
    session = SessionView(session_id, "m1", "c0", 0.0, 0.0, tuple(history), "lookahead")
    return PolicyContext(session, (), children or {}, tuple(actions), max_depth, 0.0)


def as_dict(proposals: list[Proposal]) -> dict[tuple[str, ...], float]:
    return {p.path: p.probability for p in proposals}


def test_beam_expansion_by_hand() -> None:
    policy = LookaheadPolicy(base=TableModel(), depth=3, beam=3)
    assert isinstance(policy, Policy)
    assert policy.name == "lookahead"
    got = as_dict(policy.propose(make_ctx()))
    # Level 1: w .6, a .3, d .1 (all kept). Level 2 candidates: ww .36, wa .18, aa .15, aw .12,
    # dd .07, wd .06, ad .03, dw .02, da .01 -> keep ww, wa, aa. Level 3 from those: www .216,
    # wwa .108, waa .09, aaa .075, waw .072, ... -> keep www, wwa, waa.
    expected = {
        ("w",): 0.6,
        ("a",): 0.3,
        ("d",): 0.1,
        ("w", "w"): 0.36,
        ("w", "a"): 0.18,
        ("a", "a"): 0.15,
        ("w", "w", "w"): 0.216,
        ("w", "w", "a"): 0.108,
        ("w", "a", "a"): 0.09,
    }
    assert set(got) == set(expected)
    for path, p in expected.items():
        assert got[path] == pytest.approx(p, rel=1e-12)


def test_a_path_that_cannot_place_a_child_is_not_expanded() -> None:
    base = TableModel()
    LookaheadPolicy(base=base, depth=3, beam=3).propose(make_ctx())
    # Level 2: after w's and a's children the 3rd best is aa .15 > d's .1, so d is not asked
    # about; level 3: all three kept paths can still place a child (.36, .18, .15 > .09).
    assert base.asked == [(), ("w",), ("a",), ("w", "w"), ("w", "a"), ("a", "a")]


class Overconfident(TableModel):
    """A faulty base: P(w) = 1.5 after any history."""

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        return {**super().next_action_probabilities(ctx, history), "w": 1.5}


def test_a_step_probability_above_one_counts_as_one() -> None:
    got = as_dict(LookaheadPolicy(base=Overconfident(), depth=2, beam=2).propose(make_ctx()))
    assert got == {("w",): 1.0, ("a",): 0.3, ("w", "w"): 1.0, ("w", "a"): 0.3}


def test_output_order_is_by_depth_then_probability() -> None:
    proposals = LookaheadPolicy(base=TableModel(), depth=2, beam=2).propose(make_ctx())
    assert [p.path for p in proposals] == [("w",), ("a",), ("w", "w"), ("w", "a")]


def test_hypothetical_histories_extend_the_session_history() -> None:
    base = TableModel()
    LookaheadPolicy(base=base, depth=2, beam=2).propose(make_ctx(("d",)))
    assert base.asked == [("d",), ("d", "d"), ("d", "w")]


@pytest.mark.parametrize(("depth", "max_depth", "levels"), [(3, 5, 3), (3, 2, 2), (1, 5, 1)])
def test_depth_is_min_of_param_and_ctx(depth: int, max_depth: int, levels: int) -> None:
    proposals = LookaheadPolicy(base=TableModel(), depth=depth, beam=4).propose(
        make_ctx(max_depth=max_depth)
    )
    assert max(len(p.path) for p in proposals) == levels
    assert LookaheadPolicy(base=TableModel()).propose(make_ctx(max_depth=0)) == []


def test_a_base_without_a_distribution_is_asked_for_depth_one_proposals() -> None:
    base = RecordingUniform()
    children: dict[str, NodeState] = {"w": "running"}
    policy = LookaheadPolicy(base=base, depth=2, beam=6)
    ctx = make_ctx(("a",), actions=("w", "left", "right"), children=children)
    got = as_dict(policy.propose(ctx))
    assert got == {
        ("w",): 0.5,
        ("left",): 0.5,
        ("w", "w"): 0.25,
        ("w", "left"): 0.25,
        ("left", "w"): 0.25,
        ("left", "left"): 0.25,
    }
    # Level 1 sees the real cursor's children; hypothetical cursors have none yet.
    assert base.seen == [(("a",), children, 1), (("a", "w"), {}, 1), (("a", "left"), {}, 1)]


def test_default_base_is_markov_and_observe_is_forwarded() -> None:
    policy = LookaheadPolicy(base_params={"order": 1})
    assert isinstance(policy.base, MarkovPolicy)
    assert policy.base.order == 1
    for _ in range(3):
        policy.observe(ActionObserved("s1", "m1", ("w",), "right"))
    assert policy.base.counts(("w",)) == {"right": 3}
    top = policy.propose(make_ctx(("w",), actions=ACTION_NAMES))[0]
    assert top.path == ("right",)


def test_forwarding_to_a_custom_base() -> None:
    base = TableModel()
    event = ActionObserved("s1", "m1", (), "w")
    LookaheadPolicy(base=base).observe(event)
    assert base.observed == [event]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 0},
        {"beam": 0},
        {"beam": 2.5},
        {"base": "nope"},
        {"base": "markov", "base_params": {"order": -1}},
        {"base": UniformPolicy(), "base_params": {"k": 2}},
    ],
)
def test_bad_params(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LookaheadPolicy(**kwargs)  # type: ignore[arg-type]


SMALL = ("w", "s", "a", "left", "right", "w+right")


@settings(max_examples=150, deadline=None)
@given(
    walks=st.lists(st.lists(st.sampled_from(SMALL), max_size=10), max_size=4),
    history=st.lists(st.sampled_from(SMALL), max_size=4),
    actions=st.lists(st.sampled_from(ACTION_NAMES), max_size=8),
    depth=st.integers(1, 4),
    beam=st.integers(1, 8),
    max_depth=st.integers(0, 5),
)
def test_contract_over_a_trained_markov(
    walks: list[list[str]],
    history: list[str],
    actions: list[str],
    depth: int,
    beam: int,
    max_depth: int,
) -> None:
    def build() -> LookaheadPolicy:
        policy = LookaheadPolicy(depth=depth, beam=beam)
        for i, steps in enumerate(walks):
            h: tuple[str, ...] = ()
            for action in steps:
                policy.observe(ActionObserved(f"s{i}", "m1", h, action))
                h = (*h, action)
        return policy

    ctx = make_ctx(history, actions=actions, max_depth=max_depth)
    proposals = build().propose(ctx)
    by_path = as_dict(proposals)
    assert len(by_path) == len(proposals)
    levels = min(depth, max_depth)
    for level in range(1, levels + 1):
        assert len([p for p in proposals if len(p.path) == level]) <= beam
    for p in proposals:
        assert 1 <= len(p.path) <= levels
        assert all(a in ctx.actions for a in p.path)
        assert 0.0 <= p.probability <= 1.0
        if len(p.path) > 1:
            assert by_path[p.path[:-1]] >= p.probability
    assert sum(p.probability for p in proposals if len(p.path) == 1) <= 1.0 + 1e-9
    assert build().propose(ctx) == proposals
