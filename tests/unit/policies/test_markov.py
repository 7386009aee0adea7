"""MarkovPolicy: the documented formula by hand, the back-off chain, and the Policy contract."""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, Proposal, SessionView
from policies.base import NextActionModel, Policy
from policies.calibration import Calibration, calibration
from policies.markov import MarkovPolicy
from policies.smoothing import BASE_SINGLE


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


def test_fresh_model_is_the_base_prior_over_ctx_actions() -> None:
    policy = MarkovPolicy()
    dist = policy.next_action_probabilities(make_ctx(), ())
    assert list(dist) == list(ACTION_NAMES)
    assert dist == {a: f(p) for a, p in uniform().items()}
    assert max(dist, key=dist.__getitem__) == "w"  # viewers mostly walk forward
    assert min(dist.values()) == f(Fraction(1, 48))  # every action keeps some mass
    # Offered only a few actions, the prior is renormalised to them.
    few = policy.next_action_probabilities(make_ctx(actions=("w", "w+right")), ())
    assert few == {a: f(p) for a, p in uniform(("w", "w+right")).items()}


def shrink(counts: dict[str, int], prior: dict[str, Fraction], strength: Fraction,
           d: Fraction) -> dict[str, Fraction]:  # fmt: skip
    """The module doc's step 2, in exact fractions (an independent re-statement)."""
    total = sum(counts.values())
    if total == 0:
        return prior
    seen = sum(1 for n in counts.values() if n > 0)
    back = d * seen + strength
    return {
        a: (max(Fraction(counts.get(a, 0)) - d, Fraction(0)) + back * q) / (total + strength)
        for a, q in prior.items()
    }


def uniform(actions: Sequence[str] = ACTION_NAMES) -> dict[str, Fraction]:
    """The base prior B of step 1: half uniform, half BASE_SINGLE renormalised to ``actions``."""
    single = {a: Fraction(str(BASE_SINGLE.get(a, 0.0))) for a in actions}
    total = sum(single.values())
    return {a: Fraction(1, 2 * len(actions)) + single[a] / (2 * total) for a in actions}


def test_worked_example_from_the_docstring() -> None:
    # Defaults: order 2, alpha 1, beta 4, kappa 4, |A| = 24; raw formula (no recalibration).
    policy = MarkovPolicy(calibrate=False)
    walk(policy, "s1", "m1", W3R)
    # Counts per context (global = memory = session here); a held key's streak is a context.
    assert policy.counts(()) == {"w": 3, "right": 1}
    assert policy.counts(("w",)) == {"w": 2, "right": 1}
    assert policy.counts(("w", "w")) == {"w": 1, "right": 1}
    assert policy.counts(("*", "w", "3")) == {"right": 1}
    assert policy.counts(("w", "w"), session_id="s1") == {"w": 1, "right": 1}
    assert policy.counts(("w", "w"), memory_id="m2") == {}
    # Count-of-counts over the global table: five 1s, one 2 -> D = 5 / (5 + 2).
    d = Fraction(5, 7)
    # History (w, w, w, right): only c0 has evidence. No other memory, no other session: the
    # global and memory levels see no exclusive counts (the session's own events count once,
    # at the session scope) and stay uniform; the session shrinks its counts toward them.
    dist = policy.next_action_probabilities(make_ctx(W3R), W3R)
    expect = shrink({"w": 3, "right": 1}, uniform(), Fraction(4), d)
    assert dist == {a: f(p) for a, p in expect.items()}
    assert sum(dist.values()) == pytest.approx(1.0, abs=1e-12)


def test_propose_returns_top_k_with_ties_in_ctx_action_order() -> None:
    policy = MarkovPolicy(calibrate=False)
    walk(policy, "s1", "m1", W3R)
    proposals = policy.propose(make_ctx(W3R))
    # right, then left (the base prior's next), then a and d tied: ctx.actions order.
    assert [p.path for p in proposals] == [("w",), ("right",), ("left",), ("a",)]
    assert all(p.session_id == "s1" for p in proposals)
    expect = shrink({"w": 3, "right": 1}, uniform(), Fraction(4), Fraction(5, 7))
    assert proposals[0].probability == f(expect["w"])
    assert proposals[3].probability == f(expect["a"]) == f(expect["d"])


def test_context_chain_shrinks_each_longer_context_toward_the_shorter() -> None:
    policy = MarkovPolicy(calibrate=False)
    walk(policy, "s1", "m1", W3R)
    d = Fraction(5, 7)
    # A viewer on another memory: every count is exclusive evidence at the global level.
    g0 = shrink({"w": 3, "right": 1}, uniform(), Fraction(1), Fraction(0))  # c0: no discount
    g1 = shrink({"w": 2, "right": 1}, g0, Fraction(4), d)
    g2 = shrink({"w": 1, "right": 1}, g1, Fraction(4), d)
    dist = policy.next_action_probabilities(make_ctx(session_id="s9", memory_id="m9"), ("w", "w"))
    assert dist["w"] == f(g2["w"]) and dist["left"] == f(g2["left"])
    # After a streak of three w the streak context (only "right" followed it) is the last level.
    g3 = shrink({"right": 1}, shrink({"w": 1, "right": 1}, g1, Fraction(4), d), Fraction(4), d)
    streak = policy.next_action_probabilities(make_ctx(session_id="s9", memory_id="m9"), W3R[:3])
    assert streak["right"] == f(g3["right"])


def test_order_zero_ignores_context() -> None:
    policy = MarkovPolicy(order=0, calibrate=False)
    walk(policy, "s1", "m1", W3R)
    a = policy.next_action_probabilities(make_ctx(), ("w", "w"))
    b = policy.next_action_probabilities(make_ctx(), ("right",))
    assert a == b
    # One context: w counted 3, right 1 -> n1 = 1, n2 = 0 -> D = 1, clamped to 0.95.
    expect = shrink({"w": 3, "right": 1}, uniform(), Fraction(4), Fraction(95, 100))
    assert a["w"] == f(expect["w"])


def test_new_session_on_same_memory_inherits_memory_statistics() -> None:
    policy = MarkovPolicy(calibrate=False)
    walk(policy, "s1", "m1", W3R)
    dist = policy.next_action_probabilities(make_ctx(session_id="s2"), W3R)
    # s1's events are the other sessions' evidence at the memory scope: s2 starts there.
    expect = shrink({"w": 3, "right": 1}, uniform(), Fraction(4), Fraction(5, 7))
    assert dist["w"] == f(expect["w"])


def test_new_memory_inherits_global_statistics() -> None:
    policy = MarkovPolicy(calibrate=False)
    walk(policy, "s1", "m1", W3R)
    dist = policy.next_action_probabilities(make_ctx(session_id="s9", memory_id="m9"), W3R)
    expect = shrink({"w": 3, "right": 1}, uniform(), Fraction(1), Fraction(0))
    assert dist["w"] == f(expect["w"])


def test_one_event_is_evidence_once() -> None:
    # A lone viewer: their own events must not also pose as the memory's and everyone's.
    policy = MarkovPolicy(order=0, calibrate=False)
    walk(policy, "s1", "m1", ["left"] * 6)
    dist = policy.next_action_probabilities(make_ctx(), ())
    expect = shrink({"left": 6}, uniform(), Fraction(4), Fraction(75, 100))
    assert dist["left"] == f(expect["left"])
    assert dist["left"] < 0.7  # counted at three scopes it would be ~0.9


def test_session_evidence_outweighs_memory_and_global() -> None:
    # s1 and s2 share m1; s1 always turns left, s2 always walks; s3 elsewhere always strafes.
    policy = MarkovPolicy(order=0, alpha=1.0, beta=2.0, calibrate=False)
    walk(policy, "s1", "m1", ["left"] * 4)
    walk(policy, "s2", "m1", ["w"] * 2)
    walk(policy, "s3", "m2", ["a"] * 6)
    actions = ("w", "a", "left")  # |A| = 3
    d = Fraction(3, 4)  # no count is exactly 1: the default discount
    p_g = shrink({"a": 6}, uniform(actions), Fraction(1), Fraction(0))  # other memories than m1
    p_m = shrink({"w": 2}, p_g, Fraction(2), d)  # other sessions on m1 than s1
    p_s = shrink({"left": 4}, p_m, Fraction(2), d)
    dist = policy.next_action_probabilities(make_ctx(actions=actions), ())
    assert dist == {x: f(p_s[x]) for x in actions}
    assert max(dist, key=dist.__getitem__) == "left"
    assert sum(p_s.values()) == 1


def test_counts_outside_ctx_actions_are_ignored() -> None:
    policy = MarkovPolicy(order=0, calibrate=False)
    walk(policy, "s1", "m1", ["w", "w", "up", "up", "up"])
    # A = {w, left}: the ups do not count. Session {w: 2}, D = 0.75 (no count is 1).
    dist = policy.next_action_probabilities(make_ctx(actions=("w", "left")), ())
    expect = shrink({"w": 2}, uniform(("w", "left")), Fraction(4), Fraction(3, 4))
    assert dist == {a: f(p) for a, p in expect.items()}


def test_recalibration_improves_held_out_calibration_on_unpredictable_viewers() -> None:
    # Uniformly random viewers: thin contexts make the raw model overconfident (issue 11's
    # "predicted high, realised low"); the online bins learn to scale those forecasts down.
    rnd = random.Random(0)
    acts = ("w", "a", "d", "left", "right", "s")
    walks = [[rnd.choice(acts) for _ in range(10)] for _ in range(80)]

    def held_out(policy: MarkovPolicy) -> Calibration:
        pairs = []
        for i, steps in enumerate(walks):
            history: tuple[str, ...] = ()
            for action in steps:
                if i >= 50:  # predicted before the event is observed: held-out viewers
                    ctx = make_ctx(history, session_id=f"s{i}", memory_id=f"m{i % 5}", actions=acts)
                    pairs.append((policy.next_action_probabilities(ctx, history), action))
                policy.observe(ActionObserved(f"s{i}", f"m{i % 5}", history, action))
                history = (*history, action)
        return calibration(pairs)

    raw, cal = held_out(MarkovPolicy(calibrate=False)), held_out(MarkovPolicy())
    assert cal.top_ece < raw.top_ece and cal.log_loss < raw.log_loss
    assert cal.top_ece <= 0.1  # 300 forecasts: the ECE itself has a few hundredths of noise


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
    policy = MarkovPolicy(depth=2, top_k=2, calibrate=False)
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
