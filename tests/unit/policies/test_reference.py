"""The optimised markov and lookahead against their straightforward versions (``reference``):
fed the same events in the same order, asked the same questions in between, they give the same
distributions and the same proposals, bit for bit (memos must never outlive an observe)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, SessionView
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from tests.unit.policies.reference import ReferenceLookahead, ReferenceMarkov

# A few actions so that contexts repeat and streaks form; a combination spelled two ways and an
# action the frontend does not offer (an operator's own), which the counts keep verbatim.
VOCAB = ("w", "w", "w", "left", "right", "a", "w+right", "Right+W", "jump")
ACTION_SETS = (ACTION_NAMES, ("w", "left", "right", "a"), ("right+w", "w", "jump", "s"), ())

observe_st = st.tuples(
    st.just("observe"),
    st.sampled_from(["s1", "s2", "s3"]),
    # mostly one memory per session; "s3" sometimes on another (a reused id: negative counts)
    st.sampled_from(["m1", "m1", "m2"]),
    st.sampled_from(VOCAB),
)
ask_st = st.tuples(
    st.just("ask"),
    st.sampled_from(["s1", "s2", "s3", "s9"]),
    st.sampled_from(["m1", "m2", "m9"]),
    st.lists(st.sampled_from(VOCAB), max_size=9).map(tuple),
    st.sampled_from(range(len(ACTION_SETS))),
    st.integers(0, 4),
)
params_st = st.fixed_dictionaries(
    {
        "order": st.integers(0, 3),
        "alpha": st.floats(0.01, 5.0),
        "min_count": st.integers(1, 3),
        "beta": st.floats(0.01, 20.0),
        "kappa": st.floats(0.01, 20.0),
        "top_k": st.integers(1, 6),
        "depth": st.integers(1, 3),
        "calibrate": st.booleans(),
    }
)


def ctx_for(
    sid: str, mid: str, history: tuple[str, ...], actions: int, depth: int
) -> PolicyContext:
    view = SessionView(sid, mid, "c0", 0.0, 0.0, history, "markov")
    return PolicyContext(view, (history,), {}, ACTION_SETS[actions], depth, 0.0)


def policy_pairs(
    params: dict[str, object], depth: int, beam: int
) -> tuple[MarkovPolicy, ReferenceMarkov, LookaheadPolicy, ReferenceLookahead]:
    """markov and lookahead, and the reference versions they are held to, built alike."""
    return (
        MarkovPolicy(**params),  # type: ignore[arg-type]
        ReferenceMarkov(**params),  # type: ignore[arg-type]
        LookaheadPolicy(MarkovPolicy(**params), depth=depth, beam=beam),  # type: ignore[arg-type]
        ReferenceLookahead(ReferenceMarkov(**params), depth=depth, beam=beam),  # type: ignore[arg-type]
    )


@settings(max_examples=300, deadline=None)
@given(
    params=params_st,
    ops=st.lists(st.one_of(observe_st, ask_st), max_size=60),
    depth=st.integers(1, 4),
    beam=st.integers(1, 8),
)
def test_optimised_prediction_matches_the_reference(
    params: dict[str, object], ops: list[tuple[object, ...]], depth: int, beam: int
) -> None:
    fast, slow, fast_deep, slow_deep = policy_pairs(params, depth, beam)
    histories: dict[tuple[str, str], tuple[str, ...]] = {}
    for op in ops:
        if op[0] == "observe":
            _, sid, mid, action = op
            assert isinstance(sid, str) and isinstance(mid, str) and isinstance(action, str)
            before = histories.get((sid, mid), ())
            event = ActionObserved(sid, mid, before, action)
            for policy in (fast, slow, fast_deep, slow_deep):
                policy.observe(event)
            histories[(sid, mid)] = (*before, action)
            continue
        _, sid, mid, history, actions, max_depth = op
        ctx = ctx_for(sid, mid, history, actions, max_depth)  # type: ignore[arg-type]
        for _ in range(2):  # the second time from the memos
            assert fast.next_action_probabilities(ctx, history) == (
                slow.next_action_probabilities(ctx, history)
            )
            assert fast.propose(ctx) == slow.propose(ctx)
            assert fast_deep.propose(ctx) == slow_deep.propose(ctx)
    assert fast.reliability() == slow.reliability()


def test_a_long_walk_calibrates_as_the_reference() -> None:
    """Step 5 over thousands of events on many actions (loud and quiet keys of every base
    prior mixed, streaks, three memories): the bins stay the reference's, bit for bit."""
    import random

    rng = random.Random(7)
    fast, slow = MarkovPolicy(), ReferenceMarkov()
    vocab = (*ACTION_NAMES[:12], "w", "w", "w", "left")
    histories: dict[str, tuple[str, ...]] = {}
    for step in range(3000):
        sid = f"s{rng.randrange(40)}"
        mid = f"m{int(sid[1:]) % 3}"
        before = histories.get(sid, ())
        prev = before[-1] if before and rng.random() < 0.6 else rng.choice(vocab)
        event = ActionObserved(sid, mid, before, prev)
        fast.observe(event)
        slow.observe(event)
        histories[sid] = (*before, prev)[-8:]
        if step % 500 == 0:
            assert fast.reliability() == slow.reliability()
    assert fast.reliability() == slow.reliability()
    ctx = ctx_for("s1", "m1", histories["s1"], 0, 2)
    assert fast.next_action_probabilities(ctx, histories["s1"]) == (
        slow.next_action_probabilities(ctx, histories["s1"])
    )
