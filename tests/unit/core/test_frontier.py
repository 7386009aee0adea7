"""Candidate generation and valuation (orchestrator.core.frontier), and the tree index."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.frontier import (
    Candidate,
    active_sessions,
    benefit_s,
    candidates,
    collect_votes,
    expected_gpu_s,
    interests,
    need_time,
    probability,
    ranked,
    revalue,
    step_s,
    value,
)
from orchestrator.core.poses import action_to_pose
from orchestrator.core.tree import TreeIndex
from orchestrator.core.types import (
    BucketState,
    Budget,
    NodeState,
    PlanInput,
    Proposal,
    SessionView,
    Timing,
    TreeNode,
)

T = Timing(gpu_s_per_chunk=10.0, chunk_duration_s=5.0, think_s=2.0)


def pose(action: str) -> str:
    return str(action_to_pose(action))


def node(cid: str, parent: str | None, action: str, state: NodeState = "ready") -> TreeNode:
    depth = 0 if parent is None else parent.count("/") + 1
    return TreeNode(cid, "m", parent, pose(action), action, state, depth)


def session(
    sid: str = "s1", cursor: str = "r", watch: float = 0.0, active: float = 0.0
) -> SessionView:
    return SessionView(sid, "m", cursor, watch_started_at=watch, last_active_at=active)


def inp(
    nodes: tuple[TreeNode, ...],
    sessions: tuple[SessionView, ...],
    proposals: tuple[Proposal, ...],
    now: float = 0.0,
    budget: Budget | None = None,
    timing: Timing = T,
) -> PlanInput:
    return PlanInput(
        now=now,
        nodes=nodes,
        sessions=sessions,
        jobs=(),
        demands=(),
        proposals=proposals,
        budget=budget or Budget(),
        bucket=BucketState(1000.0, now),
        timing=timing,
    )


def cands(i: PlanInput) -> list[Candidate]:
    index = TreeIndex(i.nodes)
    return candidates(i, index, interests(i, index, active_sessions(i)))


ROOT = node("r", None, "w")


# ---- value formula, hand-computed -------------------------------------------------------


def test_need_time_is_depth_steps_of_watch_plus_think() -> None:
    s = session(watch=100.0)
    assert need_time(s, 1, T, now=100.0) == 107.0
    assert need_time(s, 2, T, now=100.0) == 114.0
    assert need_time(s, 1, T, now=110.0) == 110.0  # clamped: the viewer is late


def test_depth1_just_started_watching() -> None:
    # G=10, watch 5 + think 2: requested in 7 s, ready in 10 s -> waits 3 s instead of 10.
    assert benefit_s(0.5, need=7.0, now=0.0, timing=T) == pytest.approx(0.5 * (10 - 3))
    [c] = cands(inp((ROOT,), (session(),), (Proposal("s1", ("w",), 0.5),)))
    assert c.need_time == 7.0 and c.depth == 1
    assert c.benefit_s == pytest.approx(3.5)
    assert c.expected_gpu_s == 10.0
    # It runs 7 s before the viewer chooses; wrong half the time: 3.5 GPU-s of expected waste.
    assert c.waste_gpu_s == pytest.approx(3.5) and c.charge_gpu_s == pytest.approx(7.0)
    assert c.score == pytest.approx(1.0)  # the odds P / (1 - P)
    assert (c.memory_id, c.parent_id, c.pose, c.action) == ("m", "r", "w-31", "w")


def test_full_saving_when_lead_exceeds_generation_time() -> None:
    slow_viewer = Timing(gpu_s_per_chunk=10.0, chunk_duration_s=5.0, think_s=20.0)
    assert benefit_s(0.4, need=25.0, now=0.0, timing=slow_viewer) == pytest.approx(4.0)


def test_no_saving_once_the_request_is_due() -> None:
    # 8 s into watching, need is clamped to now: starting now equals starting on demand.
    assert cands(inp((ROOT,), (session(),), (Proposal("s1", ("w",), 0.9),), now=8.0)) == []


def test_cold_start_is_part_of_both_waits() -> None:
    cold = Timing(gpu_s_per_chunk=10.0, cold_start_s=5.0, chunk_duration_s=5.0, think_s=2.0)
    assert expected_gpu_s(cold) == 15.0
    # ready at 15, need at 7: waits 8 instead of 15.
    assert benefit_s(1.0, need=7.0, now=0.0, timing=cold) == pytest.approx(7.0)
    assert benefit_s(1.0, need=0.0, now=0.0, timing=cold) == 0.0


def test_depth2_needs_a_ready_parent() -> None:
    props = (Proposal("s1", ("w",), 0.6), Proposal("s1", ("w", "d"), 0.3))
    [c] = cands(inp((ROOT,), (session(),), props))
    assert c.depth == 1  # the grandchild's parent does not exist yet
    child = node("r/w", "r", "w")
    # 1.53 s saved per 7 expected wasted GPU-s (0.22) clears the default threshold of 0.15.
    assert len(cands(inp((ROOT, child), (session(),), props))) == 1
    cs = cands(inp((ROOT, child), (session(),), props, budget=Budget(min_benefit_per_gpu_s=0.0)))
    [c2] = cs
    assert (c2.parent_id, c2.depth, c2.need_time) == ("r/w", 2, 14.0)
    # Started now it is ready at 10 (saves 10 s); started at the parent's request (t = 7) it
    # would still save 7 s, a wait worth what it reveals (1 - P): 0.3 * (10 - 0.7 * 7).
    assert c2.benefit_s == pytest.approx(0.3 * (10.0 - 0.7 * 7.0))
    assert c2.waste_gpu_s == pytest.approx(0.7 * 10.0)
    running_child = node("r/w", "r", "w", "running")
    free = Budget(min_benefit_per_gpu_s=0.0)
    assert cands(inp((ROOT, running_child), (session(),), props, budget=free)) == []


def test_combines_sessions_on_one_memory() -> None:
    sessions = (session("s1"), session("s2", watch=3.0))
    props = (Proposal("s1", ("w",), 0.5), Proposal("s2", ("w",), 0.4))
    [c] = cands(inp((ROOT,), sessions, props))
    assert c.probability == pytest.approx(1 - 0.5 * 0.6)
    assert c.session_id == "s1" and c.sessions == ("s1", "s2")
    assert c.need_time == 7.0  # the most urgent viewer


def test_one_session_does_not_combine_with_itself() -> None:
    props = (Proposal("s1", ("w",), 0.5), Proposal("s1", ("w",), 0.4))
    [c] = cands(inp((ROOT,), (session(),), props))
    assert c.probability == 0.5


@pytest.mark.parametrize("state", ["ready", "running"])
def test_existing_chunks_are_not_candidates(state: NodeState) -> None:
    nodes = (ROOT, node("r/w", "r", "w", state))
    assert cands(inp(nodes, (session(),), (Proposal("s1", ("w",), 0.5),))) == []


def test_failed_chunks_are_candidates_again() -> None:
    nodes = (ROOT, node("r/w", "r", "w", "failed"))
    assert len(cands(inp(nodes, (session(),), (Proposal("s1", ("w",), 0.5),)))) == 1


def test_filters() -> None:
    props = (Proposal("s1", ("w",), 0.5),)
    assert cands(inp((ROOT,), (session(),), props, budget=Budget(min_probability=0.6))) == []
    deep = (Proposal("s1", ("w",), 0.5), Proposal("s1", ("w", "w"), 0.4))
    nodes = (ROOT, node("r/w", "r", "w"))
    assert cands(inp(nodes, (session(),), deep, budget=Budget(max_depth=1))) == []
    idle = session(active=-200.0)
    assert cands(inp((ROOT,), (idle,), props, budget=Budget(idle_timeout_s=120.0))) == []
    picky = Budget(min_benefit_per_gpu_s=1.0)  # score is exactly 1.0 (odds 0.5 / 0.5): dropped
    assert cands(inp((ROOT,), (session(),), props, budget=picky)) == []
    unknown = (Proposal("ghost", ("w",), 0.9), Proposal("s1", ("jump",), 0.9))
    assert cands(inp((ROOT,), (session(),), unknown)) == []
    nan = (Proposal("s1", ("w",), math.nan),)
    assert cands(inp((ROOT,), (session(),), nan)) == []
    not_ready_cursor = (node("r", None, "w", "running"),)
    assert cands(inp(not_ready_cursor, (session(),), props)) == []


def test_ranking_by_score_then_probability_then_key() -> None:
    props = (
        Proposal("s1", ("w",), 0.3),
        Proposal("s1", ("a",), 0.5),
        Proposal("s1", ("d",), 0.3),
    )
    cs = cands(inp((ROOT,), (session(),), props))
    assert [c.action for c in cs] == ["a", "d", "w"]  # d-31 < w-31 on the pose tie-break


def test_default_threshold_admits_odds_above_its_value() -> None:
    # Budget().min_benefit_per_gpu_s = 0.15: a depth-1 guess needs P / (1 - P) > 0.15, P > 0.13.
    assert Budget().min_benefit_per_gpu_s == 0.15
    props = (Proposal("s1", ("w",), 0.14), Proposal("s1", ("a",), 0.12))
    assert [c.action for c in cands(inp((ROOT,), (session(),), props))] == ["w"]


def test_session_think_time_sets_need_time() -> None:
    slow = SessionView("s1", "m", "r", 0.0, 0.0, think_s=20.0)
    assert step_s(slow, T) == 25.0 and need_time(slow, 1, T, 0.0) == 25.0
    [c] = cands(inp((ROOT,), (slow,), (Proposal("s1", ("w",), 0.5),)))
    assert c.need_time == 25.0 and c.benefit_s == pytest.approx(0.5 * 10.0)


def test_gone_session_gets_no_candidates() -> None:
    gone = SessionView("s1", "m", "r", 0.0, 0.0, idle_after_s=30.0)
    props = (Proposal("s1", ("w",), 0.9),)
    assert cands(inp((ROOT,), (gone,), props, now=31.0)) == []
    assert cands(inp((ROOT,), (gone,), props, now=29.0)) == []  # due: no lead left, no value
    early = SessionView("s1", "m", "r", 25.0, 0.0, idle_after_s=30.0)
    assert len(cands(inp((ROOT,), (early,), props, now=29.0))) == 1


def test_cold_start_lowers_the_value() -> None:
    [c] = cands(inp((ROOT,), (session(),), (Proposal("s1", ("w",), 0.8),)))
    cold = revalue(c, inp((ROOT,), (session(),), (), timing=T), 5.0)
    assert cold.benefit_s == pytest.approx(0.8 * 2.0)  # ready at 15, needed at 7: saves 2 of 10
    assert cold.waste_gpu_s == pytest.approx(0.2 * 7.0 + 0.8 * 5.0)  # the load is paid anyway
    assert cold.score < c.score and cold.expected_gpu_s == 15.0


@given(
    st.floats(0, 1), st.floats(0, 1e3), st.integers(1, 4), st.floats(0.5, 60),
    st.floats(0.1, 500), st.floats(0, 300),
)  # fmt: skip
def test_value_bounds(
    p: float, lead: float, depth: int, step: float, e: float, cold: float
) -> None:
    v = value(p, lead, depth, step, e, cold)
    assert 0.0 <= v.benefit_s <= p * min(e, lead) + 1e-9
    assert 0.0 <= v.charge_gpu_s <= min(cold + e, lead) + 1e-9
    assert 0.0 <= v.waste_gpu_s <= v.charge_gpu_s + 1e-9
    assert v.score >= 0.0
    warm = value(p, lead, depth, step, e)
    # A cold start never makes a guess more attractive; a deeper one never saves more.
    assert warm.score >= v.score - 1e-9 and warm.benefit_s >= v.benefit_s - 1e-9
    assert value(p, lead, 1, step, e).benefit_s >= warm.benefit_s - 1e-9
    if 0.0 < p < 1.0 and lead > 1e-6:  # (below, p * lead underflows)
        # depth 1, warm: the score is the odds in every regime (valuation module doc, step 4)
        assert value(p, lead, 1, step, e).score == pytest.approx(p / (1 - p), rel=1e-9)


# ---- tree index ------------------------------------------------------------------------


def test_tree_index() -> None:
    a, b = node("r/w", "r", "w"), node("r/w/d", "r/w", "d", "running")
    idx = TreeIndex((b, a, ROOT))
    assert idx.node("r/w") == a and idx.node(None) is None
    assert idx.children("r") == {"w-31": a}
    assert idx.by_key("m", None, "w-31") == ROOT
    assert idx.depth_below("r/w/d", "r") == 2
    assert idx.depth_below("r/w/d", "r", max_steps=1) is None
    assert idx.depth_below("r", "r") == 0
    assert idx.is_descendant("r/w/d", "r") and not idx.is_descendant("r", "r/w")
    steps = idx.resolve_path("m", "r", ("w", "d", "a"), 125)
    assert [s.node for s in steps] == [a, b, None]
    assert [s.parent for s in steps] == [ROOT, a, b]
    assert steps[1].pose == "d-31"
    assert idx.last_step("m", "r", ("w", "d", "a"), 125) == (b, "a-31")
    assert idx.last_step("m", "r", ("s", "w"), 125) == (None, "w-31")
    assert idx.last_step("m", "r", ("w+right",), 125) == (ROOT, "w-16, right-15")


def test_tree_index_prefers_advanced_state_on_duplicate_keys() -> None:
    failed = TreeNode("x1", "m", "r", "w-31", "w", "failed", 1)
    ready = TreeNode("x2", "m", "r", "w-31", "w", "ready", 1)
    for order in ((failed, ready), (ready, failed)):
        assert TreeIndex(order).by_key("m", "r", "w-31") == ready


# ---- properties ------------------------------------------------------------------------

ACTS = ("w", "a", "d", "w+right", "left")


@given(st.floats(0, 1), st.floats(0, 1e3), st.floats(0, 1e3), st.floats(0.1, 500), st.floats(0, 60))
def test_benefit_bounds(p: float, now: float, need: float, g: float, cold: float) -> None:
    t = Timing(gpu_s_per_chunk=g, cold_start_s=cold)
    b = benefit_s(p, max(now, need), now, t)
    assert 0 <= b <= p * (g + cold) + 1e-9


@given(
    st.lists(
        st.tuples(st.sampled_from(("s1", "s2", "s3")), st.sampled_from(ACTS), st.floats(0, 1)),
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_candidates_are_order_independent_and_bounded(
    votes: list[tuple[str, str, float]], rnd: random.Random
) -> None:
    sessions = tuple(session(s, watch=i) for i, s in enumerate(("s1", "s2", "s3")))
    props = tuple(Proposal(s, (a,), p) for s, a, p in votes)
    i = inp((ROOT,), sessions, props)
    shuffled = list(props)
    rnd.shuffle(shuffled)
    j = inp((ROOT,), tuple(reversed(sessions)), tuple(shuffled))
    a, b = cands(i), cands(j)
    assert a == b
    for c in a:
        assert 0 <= c.probability <= 1
        assert c.probability >= i.budget.min_probability
        assert c.score > i.budget.min_benefit_per_gpu_s
    assert len({c.key for c in a}) == len(a)


# ---- the planner's shortcuts agree with the plain computation ------------------------------


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[TreeNode, ...]:
    """Small trees with duplicated ids and keys, missing parents and all three states."""
    ids = ("r", "r/w", "r/a", "r/w/d", "r/w/w", "x", "x/w")
    out = []
    for _ in range(draw(st.integers(0, 12))):
        cid = draw(st.sampled_from(ids))
        parent = draw(st.sampled_from((None, "r", "r/w", "x", "gone")))
        action = draw(st.sampled_from(ACTS))
        state: NodeState = draw(st.sampled_from(("ready", "running", "failed")))
        memory = draw(st.sampled_from(("m", "m2")))
        out.append(TreeNode(cid, memory, parent, pose(action), action, state, 1))
    return tuple(out)


@given(snapshots(), st.lists(st.sampled_from(("r", "r/w", "x", "gone", "r/a")), max_size=4))
def test_lazy_tree_lookups_equal_the_full_index(
    nodes: tuple[TreeNode, ...], ids: list[str]
) -> None:
    full = TreeIndex(nodes)
    full.key_index()
    lazy = TreeIndex(nodes)
    keys = [(m, p, pose(a)) for m in ("m", "m2") for p in (None, "r", "r/w", "x") for a in ACTS]
    found = lazy.prefetch(ids, children_of=ids[:2])
    for c in ids:
        assert found.get(c) == full.node(c)
    by_keys = lazy.by_keys(keys)
    for k in keys:
        assert by_keys.get(k) == full.by_key(*k)
    for c in ("r", "r/w", "r/a", "x", "gone"):
        assert lazy.node(c) == full.node(c)
    assert lazy.id_index() == full.id_index() and lazy.key_index() == full.key_index()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("s1", "s2", "s3")),
            st.lists(st.sampled_from(ACTS), min_size=1, max_size=2).map(tuple),
            st.floats(0, 1),
        ),
        max_size=14,
    ),
    st.sampled_from((0.0, 0.1)),
    st.integers(0, 3),
)
def test_ranked_equals_sorted_candidates(
    votes: list[tuple[str, tuple[str, ...], float]], min_benefit: float, taken_n: int
) -> None:
    nodes = (ROOT, node("r/w", "r", "w"), node("r/a", "r", "a", "running"))
    sessions = (session("s1"), session("s2", cursor="r/w", watch=2.0), session("s3", watch=4.0))
    props = tuple(Proposal(s, path, p) for s, path, p in votes)
    i = inp(nodes, sessions, props, budget=Budget(min_benefit_per_gpu_s=min_benefit))
    index = TreeIndex(i.nodes)
    active = {s.session_id: s for s in active_sessions(i)}
    valued = interests(i, index, active.values())
    taken = set(list(valued)[:taken_n])
    expected = candidates(i, index, valued, taken)
    assert list(ranked(i, index, collect_votes(i, index, active), taken)) == expected
    # Valuing only what ``want`` names gives the keys it covers (every session, every depth, a
    # pose) the very same votes.
    wanted = {pose(path[-1]) for _, path, _ in votes[::2]}
    want = {(sid, d, q) for sid in ("s1", "s2", "s3") for d in (1, 2) for q in wanted}
    some = collect_votes(i, TreeIndex(i.nodes), active, want)
    every = collect_votes(i, index, active)
    assert some == {key: v for key, v in every.items() if key[2] in wanted}
    assert {key: probability(v) for key, v in every.items()} == {
        key: c.probability for key, c in valued.items()
    }
