"""MarkovPolicy: the documented formula by hand, the back-off chain, and the Policy contract."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, Proposal, SessionView
from policies.base import NextActionModel, Policy
from policies.markov import MarkovPolicy


def make_ctx(
    history: Sequence[str] = (),
    *,
    session_id: str = "s1",
    memory_id: str = "m1",
    actions: Sequence[str] = ACTION_NAMES,
    max_depth: int = 2,
) -> PolicyContext:
    session = SessionView(
        session_id=session_id,
        memory_id=memory_id,
        cursor_chunk_id="c0",
        watch_started_at=0.0,
        last_active_at=0.0,
        history=tuple(history),
        policy="markov",
    )
    return PolicyContext(
        session=session,
        memory_history=(tuple(history),),
        children={},
        actions=tuple(actions),
        max_depth=max_depth,
        now=0.0,
    )


def walk(policy: MarkovPolicy, session_id: str, memory_id: str, actions: Sequence[str]) -> None:
    """Feed one session's actions as the host would: each with the history before it."""
    history: tuple[str, ...] = ()
    for action in actions:
        policy.observe(ActionObserved(session_id, memory_id, history, action))
        history = (*history, action)


def depth1(proposals: list[Proposal]) -> dict[str, float]:
    return {p.path[0]: p.probability for p in proposals if len(p.path) == 1}


def f(x: Fraction) -> object:
    return pytest.approx(float(x), rel=1e-12, abs=1e-15)


W3R = ("w", "w", "w", "right")


# -- the formula, by hand ---------------------------------------------------------------------


def test_protocols() -> None:
    policy = MarkovPolicy()
    assert isinstance(policy, Policy)
    assert isinstance(policy, NextActionModel)
    assert policy.name == "markov"


def test_fresh_model_is_uniform_over_ctx_actions() -> None:
    policy = MarkovPolicy()
    dist = policy.next_action_probabilities(make_ctx(), ())
    assert list(dist) == list(ACTION_NAMES)
    assert all(p == f(Fraction(1, 24)) for p in dist.values())


def test_worked_example_from_the_docstring() -> None:
    # Defaults: order 2, alpha 1, min_count 2, beta 4, |A| = 24.
    policy = MarkovPolicy()
    walk(policy, "s1", "m1", W3R)
    # Counts per context (global = memory = session here):
    assert policy.counts(()) == {"w": 3, "right": 1}
    assert policy.counts(("w",)) == {"w": 2, "right": 1}
    assert policy.counts(("w", "w")) == {"w": 1, "right": 1}
    assert policy.counts(("w", "w"), session_id="s1") == {"w": 1, "right": 1}
    assert policy.counts(("w", "w"), memory_id="m2") == {}
    # History (w, w, w, right): c2 = (w, right) and c1 = (right,) unseen -> c0, N = 4.
    # P_g(w) = (3+1)/(4+24) = 1/7; P_m(w) = (3 + 4/7)/8 = 25/56; P_s(w) = (3 + 4*25/56)/8.
    dist = policy.next_action_probabilities(make_ctx(W3R), W3R)
    assert dist["w"] == f(Fraction(67, 112))
    # right: P_g = 2/28, P_m = (1 + 8/28)/8 = 9/56, P_s = (1 + 36/56)/8 = 23/112
    assert dist["right"] == f(Fraction(23, 112))
    # unseen: P_g = 1/28, P_m = (4/28)/8 = 1/56, P_s = (4/56)/8 = 1/112
    assert dist["left"] == f(Fraction(1, 112))
    assert sum(dist.values()) == pytest.approx(1.0, abs=1e-12)


def test_propose_returns_top_k_with_ties_in_ctx_action_order() -> None:
    policy = MarkovPolicy()
    walk(policy, "s1", "m1", W3R)
    proposals = policy.propose(make_ctx(W3R))
    assert [p.path for p in proposals] == [("w",), ("right",), ("s",), ("a",)]
    assert all(p.session_id == "s1" for p in proposals)
    assert proposals[0].probability == f(Fraction(67, 112))
    assert proposals[2].probability == f(Fraction(1, 112))


def test_longest_context_with_min_count_global_observations() -> None:
    policy = MarkovPolicy()
    walk(policy, "s1", "m1", W3R)
    # History (w, w): c2 = (w, w) has N_g = 2 >= min_count 2 -> used (w: 1, right: 1).
    # P_g = 2/26 = 1/13; P_m = (1 + 4/13)/6 = 17/78; P_s = (1 + 4*17/78)/6 = 73/234
    dist = policy.next_action_probabilities(make_ctx(("w", "w")), ("w", "w"))
    assert dist["w"] == f(Fraction(73, 234))
    assert dist["right"] == f(Fraction(73, 234))
    # min_count 3: (w, w) is too rare, (w,) has N_g = 3 (w: 2, right: 1).
    # P_g = 3/27 = 1/9; P_m = (2 + 4/9)/7 = 22/63; P_s = (2 + 88/63)/7 = 214/441
    strict = MarkovPolicy(min_count=3)
    walk(strict, "s1", "m1", W3R)
    assert strict.next_action_probabilities(make_ctx(), ("w", "w"))["w"] == f(Fraction(214, 441))


def test_order_zero_ignores_context() -> None:
    policy = MarkovPolicy(order=0)
    walk(policy, "s1", "m1", W3R)
    a = policy.next_action_probabilities(make_ctx(), ("w", "w"))
    b = policy.next_action_probabilities(make_ctx(), ("right",))
    assert a == b
    assert a["w"] == f(Fraction(67, 112))


def test_new_session_on_same_memory_inherits_memory_statistics() -> None:
    policy = MarkovPolicy()
    walk(policy, "s1", "m1", W3R)
    dist = policy.next_action_probabilities(make_ctx(session_id="s2"), W3R)
    assert dist["w"] == f(Fraction(25, 56))  # = P_m(w): no evidence of its own yet


def test_new_memory_inherits_global_statistics() -> None:
    policy = MarkovPolicy()
    walk(policy, "s1", "m1", W3R)
    dist = policy.next_action_probabilities(make_ctx(session_id="s9", memory_id="m9"), W3R)
    assert dist["w"] == f(Fraction(1, 7))  # = P_g(w)


def test_session_evidence_outweighs_memory_and_global() -> None:
    # s1 and s2 share m1; s1 always turns left, s2 always walks; s3 elsewhere always strafes.
    policy = MarkovPolicy(order=0, alpha=1.0, beta=2.0)
    walk(policy, "s1", "m1", ["left"] * 4)
    walk(policy, "s2", "m1", ["w"] * 2)
    walk(policy, "s3", "m2", ["a"] * 6)
    actions = ("w", "a", "left")  # |A| = 3
    ctx = make_ctx(actions=actions)
    # global N = 12: left 4, w 2, a 6 -> P_g = (4+1)/15, (2+1)/15, (6+1)/15
    p_g = {"left": Fraction(5, 15), "w": Fraction(3, 15), "a": Fraction(7, 15)}
    # memory m1 N = 6: left 4, w 2 -> P_m(x) = (N_m(x) + 2 P_g(x)) / 8
    n_m = {"left": 4, "w": 2, "a": 0}
    p_m = {x: (n_m[x] + 2 * p_g[x]) / 8 for x in actions}
    # session s1 N = 4: left 4 -> P_s(x) = (N_s(x) + 2 P_m(x)) / 6
    n_s = {"left": 4, "w": 0, "a": 0}
    p_s = {x: (n_s[x] + 2 * p_m[x]) / 6 for x in actions}
    dist = policy.next_action_probabilities(ctx, ())
    assert dist == {x: f(p_s[x]) for x in actions}
    assert max(dist, key=dist.__getitem__) == "left"
    assert sum(p_s.values()) == 1


def test_counts_outside_ctx_actions_are_ignored() -> None:
    policy = MarkovPolicy(order=0)
    walk(policy, "s1", "m1", ["w", "w", "up", "up", "up"])
    # A = {w, left}: N(c) = 2 (the ups do not count). P_g(w) = 3/4, P_m = (2 + 3)/6 = 5/6,
    # P_s = (2 + 4*5/6)/6 = 8/9.
    dist = policy.next_action_probabilities(make_ctx(actions=("w", "left")), ())
    assert dist["w"] == f(Fraction(8, 9))
    assert dist["left"] == f(Fraction(1, 9))


def test_action_spellings_are_normalised() -> None:
    policy = MarkovPolicy(order=1)
    walk(policy, "s1", "m1", ["Right+W", "right+w", "w+right"])
    assert policy.counts(("w+right",)) == {"w+right": 2}
    ctx = make_ctx(actions=("W + Right", "w"))
    dist = policy.next_action_probabilities(ctx, ("right+w",))
    assert set(dist) == {"W + Right", "w"}
    assert dist["W + Right"] > dist["w"]
    assert all(p.path[0] in ctx.actions for p in policy.propose(ctx))


def test_deeper_paths_chain_the_model_on_the_hypothetical_history() -> None:
    policy = MarkovPolicy(depth=2, top_k=2)
    walk(policy, "s1", "m1", W3R)
    ctx = make_ctx(W3R, max_depth=3)
    proposals = policy.propose(ctx)
    assert [p.path for p in proposals] == [
        ("w",),
        ("right",),
        ("w", "w"),
        ("w", "right"),
        ("right", "w"),
        ("right", "right"),
    ]
    by_path = {p.path: p.probability for p in proposals}
    # (w, w): after (w, w, w, right, w), c2 = (right, w) unseen, c1 = (w,) has N_g = 3:
    # P(w | ...) = 214/441 (as in the min_count test), so P(w, w) = 67/112 * 214/441.
    assert by_path[("w", "w")] == f(Fraction(67, 112) * Fraction(214, 441))
    first = policy.next_action_probabilities(ctx, W3R)
    for path, p in by_path.items():
        if len(path) == 2:
            second = policy.next_action_probabilities(ctx, (*W3R, path[0]))
            assert p == pytest.approx(first[path[0]] * second[path[1]], rel=1e-12)
    assert {len(p.path) for p in policy.propose(make_ctx(W3R, max_depth=1))} == {1}


def test_no_actions_or_no_depth_proposes_nothing() -> None:
    policy = MarkovPolicy()
    assert policy.propose(make_ctx(actions=())) == []
    assert policy.propose(make_ctx(max_depth=0)) == []


@pytest.mark.parametrize(
    "params",
    [
        {"order": -1},
        {"order": 1.5},
        {"alpha": 0},
        {"alpha": float("nan")},
        {"beta": -1.0},
        {"beta": float("inf")},
        {"min_count": 0},
        {"top_k": 0},
        {"depth": 0},
        {"depth": True},
    ],
)
def test_bad_params_raise_value_error_naming_the_parameter(params: dict[str, object]) -> None:
    (name,) = params
    with pytest.raises(ValueError, match=name):
        MarkovPolicy(**params)  # type: ignore[arg-type]


def test_counts_rejects_two_scopes() -> None:
    with pytest.raises(ValueError):
        MarkovPolicy().counts((), memory_id="m1", session_id="s1")


# -- the Policy contract, at random -----------------------------------------------------------

SMALL = ("w", "s", "a", "left", "right", "w+right")
sessions_st = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2", "s3", "s4"]),
        st.sampled_from(["m1", "m2"]),
        st.lists(st.sampled_from(SMALL), max_size=12),
    ),
    max_size=6,
)
params_st = st.fixed_dictionaries(
    {
        "order": st.integers(0, 3),
        "alpha": st.floats(0.01, 5.0),
        "min_count": st.integers(1, 4),
        "beta": st.floats(0.01, 20.0),
        "top_k": st.integers(1, 6),
        "depth": st.integers(1, 3),
    }
)
ctx_st = st.builds(
    lambda history, sid, mid, actions, max_depth: make_ctx(
        history, session_id=sid, memory_id=mid, actions=actions, max_depth=max_depth
    ),
    st.lists(st.sampled_from(SMALL), max_size=5),
    st.sampled_from(["s1", "s2", "s9"]),
    st.sampled_from(["m1", "m2", "m9"]),
    st.lists(st.sampled_from(ACTION_NAMES), max_size=10),
    st.integers(0, 4),
)


def trained(params: dict[str, object], walks: list[tuple[str, str, list[str]]]) -> MarkovPolicy:
    policy = MarkovPolicy(**params)  # type: ignore[arg-type]
    for sid, mid, actions in walks:
        walk(policy, sid, mid, actions)
    return policy


def check_contract(proposals: list[Proposal], ctx: PolicyContext) -> None:
    """Every point of policies.base.Policy's propose() contract."""
    paths = [p.path for p in proposals]
    assert len(set(paths)) == len(paths)
    by_path = {p.path: p.probability for p in proposals}
    for p in proposals:
        assert p.session_id == ctx.session.session_id
        assert 1 <= len(p.path) <= ctx.max_depth
        assert all(a in ctx.actions for a in p.path)
        assert 0.0 <= p.probability <= 1.0
        if len(p.path) > 1:
            assert p.path[:-1] in by_path
            assert by_path[p.path[:-1]] >= p.probability
    assert sum(depth1(proposals).values()) <= 1.0 + 1e-9


@settings(max_examples=200, deadline=None)
@given(params=params_st, walks=sessions_st, ctx=ctx_st)
def test_contract_holds(
    params: dict[str, object], walks: list[tuple[str, str, list[str]]], ctx: PolicyContext
) -> None:
    policy = trained(params, walks)
    proposals = policy.propose(ctx)
    check_contract(proposals, ctx)
    # deterministic: again, and from a twin fed the same events
    assert policy.propose(ctx) == proposals
    assert trained(params, walks).propose(ctx) == proposals


@settings(max_examples=200, deadline=None)
@given(params=params_st, walks=sessions_st, ctx=ctx_st)
def test_distribution_is_proper(
    params: dict[str, object], walks: list[tuple[str, str, list[str]]], ctx: PolicyContext
) -> None:
    dist = trained(params, walks).next_action_probabilities(ctx, ctx.session.history)
    assert set(dist) == set(ctx.actions)
    assert all(0.0 <= p <= 1.0 for p in dist.values())
    if dist:
        assert sum(dist.values()) == pytest.approx(1.0, abs=1e-9)
