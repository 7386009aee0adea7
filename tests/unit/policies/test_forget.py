"""``forget_session`` / ``forget_memory`` (``policies.base.Forgetting``): what the live state calls
on eviction. Forgetting never changes another live session's probabilities; a memory forgotten
and opened again gets its counts back from the cold store (bit for bit against the reference);
the oracle drops an evicted session's future; lookahead's kept answers are what a fresh beam
gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import policies.markov as markov_module
from orchestrator.core.types import ActionObserved
from policies.markov import MarkovPolicy
from policies.oracle import OraclePolicy
from tests.unit.policies.test_reference import ask_st, ctx_for, observe_st, params_st, policy_pairs

forget_st = st.tuples(
    st.sampled_from(["forget_session", "forget_memory"]),
    st.sampled_from(["s1", "s2", "s3", "m1", "m2"]),
)


@settings(max_examples=200, deadline=None)
@given(
    params=params_st,
    ops=st.lists(st.one_of(observe_st, ask_st, forget_st), max_size=60),
    depth=st.integers(1, 4),
    beam=st.integers(1, 8),
)
def test_forgetting_leaves_other_sessions_unchanged(
    params: dict[str, object], ops: list[tuple[object, ...]], depth: int, beam: int
) -> None:
    fast, slow, fast_deep, slow_deep = policy_pairs(params, depth, beam)
    histories: dict[tuple[str, str], tuple[str, ...]] = {}
    forgotten: set[str] = set()  # sessions whose own counts the fast ones dropped
    for op in ops:
        if op[0] in ("forget_session", "forget_memory"):
            name, target = op
            assert isinstance(name, str) and isinstance(target, str)
            if name == "forget_session" and target.startswith("s"):
                forgotten.add(target)
            for policy in (fast, fast_deep):
                getattr(policy, name)(target)
            continue
        if op[0] == "observe":
            _, sid, mid, action = op
            assert isinstance(sid, str) and isinstance(mid, str) and isinstance(action, str)
            if sid in forgotten:
                continue  # an evicted session does not come back (its forecasts feed step 5)
            before = histories.get((sid, mid), ())
            event = ActionObserved(sid, mid, before, action)
            for policy in (fast, slow, fast_deep, slow_deep):
                policy.observe(event)
            histories[(sid, mid)] = (*before, action)
            continue
        _, sid, mid, history, actions, max_depth = op
        if sid in forgotten:
            continue  # its own counts are gone: only the other sessions are held to the reference
        ctx = ctx_for(sid, mid, history, actions, max_depth)  # type: ignore[arg-type]
        for _ in range(2):  # the second time from the memos / kept answers
            assert fast.next_action_probabilities(ctx, history) == (
                slow.next_action_probabilities(ctx, history)
            )
            assert fast.propose(ctx) == slow.propose(ctx)
            assert fast_deep.propose(ctx) == slow_deep.propose(ctx)


def test_forget_session_drops_its_table_and_the_cold_store_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(markov_module, "COLD_MEMORIES", 2)
    policy = MarkovPolicy()
    for i in range(5):
        policy.observe(ActionObserved(f"s{i}", f"m{i}", (), "w"))
        policy.forget_session(f"s{i}")
        policy.forget_memory(f"m{i}")
    assert policy.counts((), session_id="s0") == {}
    assert policy.counts((), memory_id="m4") == {"w": 1}  # cold, kept
    assert policy.counts((), memory_id="m0") == {}  # pushed out of the cold store
    assert policy.counts(()) == {"w": 5}  # the global counts keep every event
    assert len(policy._session) == 0 and len(policy._memory) == 0 and len(policy._cold) == 2
    policy.forget_session("unknown")
    policy.forget_memory("unknown")


def test_oracle_forgets_an_evicted_session() -> None:
    oracle = OraclePolicy({"s1": ["w"], "s2": ["a"]})
    oracle.forget_session("s1")
    oracle.forget_memory("m1")
    assert set(oracle.future) == {"s2"}
