"""The cheaper paths of markov and lookahead against the ones they replace, bit for bit:
markov's ``next_action_vector`` against its ``next_action_probabilities``; lookahead's
ranking of a vector base's children (with joints that tie after rounding) against the
reference's sort of every extension; and the answers kept per session across forgetting."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal, SessionView
from policies.base import NextActionVector, unique_actions
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from tests.unit.policies.reference import ReferenceLookahead, ReferenceMarkov
from tests.unit.policies.test_reference import ACTION_SETS, VOCAB, ctx_for, observe_st


def bits(values: list[float] | tuple[float, ...]) -> list[str]:
    return [v.hex() for v in values]


ask_st = st.tuples(
    st.just("ask"),
    st.sampled_from(["s1", "s2", "s3", "s9"]),
    st.sampled_from(["m1", "m2"]),
    st.lists(st.sampled_from(VOCAB), max_size=8).map(tuple),
    st.sampled_from(range(len(ACTION_SETS))),
    st.integers(0, 3),
)
forget_st = st.tuples(
    st.sampled_from(["forget_session", "forget_memory"]), st.sampled_from(["s1", "s2", "m1"])
)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(st.one_of(observe_st, ask_st, forget_st), max_size=50),
    depth=st.integers(1, 3),
    top_k=st.integers(1, 5),
    beam=st.integers(1, 7),
)
def test_vectors_and_kept_answers_match_the_reference(
    ops: list[tuple[object, ...]], depth: int, top_k: int, beam: int
) -> None:
    fast = MarkovPolicy(top_k=top_k, depth=depth)
    slow = ReferenceMarkov(top_k=top_k, depth=depth)
    deep = LookaheadPolicy(MarkovPolicy(), depth=depth + 1, beam=beam)
    slow_deep = ReferenceLookahead(ReferenceMarkov(), depth=depth + 1, beam=beam)
    policies = (fast, slow, deep, slow_deep)
    histories: dict[str, tuple[str, ...]] = {}
    for op in ops:
        if op[0] == "observe":
            _, sid, mid, action = op
            assert isinstance(sid, str) and isinstance(mid, str) and isinstance(action, str)
            before = histories.get(sid, ())
            for policy in policies:
                policy.observe(ActionObserved(sid, mid, before, action))
            histories[sid] = (*before, action)
        elif op[0] == "ask":
            _, sid, mid, history, actions, max_depth = op
            ctx = ctx_for(sid, mid, history, actions, max_depth)  # type: ignore[arg-type]
            got_actions, probs = fast.next_action_vector(ctx, ctx.session.history)
            assert got_actions == unique_actions(ctx.actions)
            assert all(0.0 <= p <= 1.0 for p in probs)
            dist = slow.next_action_probabilities(ctx, ctx.session.history)
            assert list(dist) == list(got_actions)
            assert bits(list(dist.values())) == bits(probs)
            for _ in range(2):  # the second time from the kept answers
                assert fast.propose(ctx) == slow.propose(ctx)
                assert deep.propose(ctx) == slow_deep.propose(ctx)
        else:
            hook, name = op
            for policy in policies:
                getattr(policy, str(hook))(name)


class VectorTable:
    """A first-order model offering both the dict and the vector (the same values)."""

    name = "vector-table"

    def __init__(self, actions: tuple[str, ...], rows: dict[str, tuple[float, ...]]) -> None:
        self.actions, self.rows = actions, rows

    def next_action_vector(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        return self.actions, self.rows[history[-1] if history else self.actions[0]]

    def next_action_probabilities(
        self, ctx: PolicyContext, history: tuple[str, ...]
    ) -> dict[str, float]:
        return dict(zip(*self.next_action_vector(ctx, history), strict=True))

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        return []

    def observe(self, event: ActionObserved) -> None:
        pass


NEAR = 0.301
# P values that round to the same joint once multiplied by a parent's P of 0.9 (adjacent
# doubles: 0.9 * NEAR == 0.9 * nextafter(NEAR, 0)), zeros, ones and ties: the cases where
# ranking by P and ranking by joint could part.
P_ST = st.sampled_from(
    [NEAR, math.nextafter(NEAR, 0.0), math.nextafter(NEAR, 1.0), 0.9, 0.1, 0.0, 1.0, 5e-324]
)


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 6),
    data=st.data(),
    depth=st.integers(1, 3),
    beam=st.integers(1, 8),
)
def test_children_by_position_rank_as_every_extension_sorted(
    n: int, data: st.DataObject, depth: int, beam: int
) -> None:
    assert -0.9 * math.nextafter(NEAR, 0.0) == -0.9 * NEAR  # the tie the strategy relies on
    actions = ("w", "a", "d", "s", "left", "right")[:n]
    rows = {a: tuple(data.draw(st.lists(P_ST, min_size=n, max_size=n))) for a in actions}
    base = VectorTable(actions, rows)
    assert isinstance(base, NextActionVector)
    view = SessionView("s1", "m1", "c0", 0.0, 0.0, (), "lookahead")
    ctx = PolicyContext(view, (), {}, actions, depth, 0.0)
    got = LookaheadPolicy(base, depth=depth, beam=beam).propose(ctx)
    want = ReferenceLookahead(base, depth=depth, beam=beam).propose(ctx)
    assert [(p.path, p.probability.hex()) for p in got] == [
        (p.path, p.probability.hex()) for p in want
    ]
