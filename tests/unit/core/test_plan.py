"""Hand-built scenarios for plan() (orchestrator.core.plan)."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TypeVar

import pytest

from orchestrator.core.plan import plan
from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import (
    BucketState,
    Budget,
    DemandRequest,
    JobKind,
    NodeState,
    Plan,
    PlanInput,
    Proposal,
    RunningJob,
    SessionView,
    Timing,
    TreeNode,
)

X = TypeVar("X")
T = Timing(gpu_s_per_chunk=10.0, chunk_duration_s=5.0, think_s=2.0)
B = Budget(
    max_containers=4,
    speculative_share=0.75,
    rate_gpu_s_per_s=0.0,
    burst_gpu_s=1000.0,
    max_depth=2,
    per_session_inflight=4,
    min_probability=0.05,
    idle_timeout_s=120.0,
)


def pose(action: str) -> str:
    return str(action_to_pose(action))


def node(cid: str, state: NodeState = "ready", memory: str = "m") -> TreeNode:
    """Chunk ids are paths of actions below a root: "r", "r/w", "r/w/d"."""
    parts = cid.split("/")
    parent = "/".join(parts[:-1]) or None
    return TreeNode(
        cid, memory, parent, pose(parts[-1] if parent else "w"), parts[-1], state, len(parts) - 1
    )


def job(
    jid: str,
    cid: str,
    kind: JobKind = "speculative",
    started: float = 0.0,
    p: float = 0.5,
    session: str | None = "s1",
    memory: str = "m",
) -> RunningJob:
    n = node(cid, "running", memory)
    return RunningJob(jid, cid, memory, n.parent_id, n.pose, kind, started, 10.0, p, session, 1)


def demand(cid: str, at: float = 0.0, rid: str | None = None, memory: str = "m") -> DemandRequest:
    n = node(cid, memory=memory)
    return DemandRequest(rid or cid, memory, n.parent_id, n.pose, n.action, "s1", at)


def session(
    sid: str = "s1", cursor: str = "r", memory: str = "m", watch: float = 0.0, active: float = 0.0
) -> SessionView:
    return SessionView(sid, memory, cursor, watch_started_at=watch, last_active_at=active)


def make(
    nodes: tuple[TreeNode, ...] = (node("r"),),
    sessions: tuple[SessionView, ...] = (session(),),
    jobs: tuple[RunningJob, ...] = (),
    demands: tuple[DemandRequest, ...] = (),
    proposals: tuple[Proposal, ...] = (),
    budget: Budget = B,
    tokens: float = 1000.0,
    now: float = 0.0,
) -> PlanInput:
    # Jobs' chunks are running nodes in a consistent snapshot.
    extra = tuple(
        node(j.chunk_id, "running", j.memory_id)
        for j in jobs
        if all(n.chunk_id != j.chunk_id for n in nodes)
    )
    return PlanInput(
        now=now,
        nodes=nodes + extra,
        sessions=sessions,
        jobs=jobs,
        demands=demands,
        proposals=proposals,
        budget=budget,
        bucket=BucketState(tokens, now),
        timing=T,
    )


def props(sid: str = "s1", **ps: float) -> tuple[Proposal, ...]:
    return tuple(Proposal(sid, (a.replace("_", "+"),), p) for a, p in ps.items())


def spec_keys(p: Plan) -> list[tuple[str | None, str]]:
    return [(s.parent_id, s.pose) for s in p.starts if s.kind == "speculative"]


# ---- demand ----------------------------------------------------------------------------


def test_demand_takes_a_free_slot() -> None:
    p = plan(make(demands=(demand("r/w"),)))
    [s] = p.starts
    assert (s.kind, s.request_id, s.parent_id, s.pose) == ("demand", "r/w", "r", "w-31")
    assert (s.probability, s.depth, s.benefit_s, s.reason) == (1.0, 0, 0.0, "demand")
    assert p.cancels == () and p.bucket.tokens == 1000.0  # demands cost no tokens


def test_root_demand_needs_no_parent() -> None:
    d = DemandRequest("req", "m2", None, "w-31", "w", None, 0.0)
    [s] = plan(make(nodes=(), sessions=(), demands=(d,))).starts
    assert s.parent_id is None and s.kind == "demand"


def test_demand_preempts_least_valuable_speculative_job() -> None:
    budget = replace(B, max_containers=2, speculative_share=1.0)
    jobs = (job("j1", "r/a", started=1.0), job("j2", "r/d", started=2.0))
    inp = make(jobs=jobs, demands=(demand("r/w"),), proposals=props(a=0.1, d=0.6), budget=budget)
    p = plan(inp)
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "preempted")]
    [s] = p.starts
    assert s.kind == "demand" and s.reason == "demand (preempted job j1)"


def test_preemption_tie_break_takes_the_newest_job() -> None:
    budget = replace(B, max_containers=2, speculative_share=1.0)
    jobs = (job("j1", "r/a", started=5.0), job("j2", "r/d", started=1.0))
    p = plan(
        make(jobs=jobs, demands=(demand("r/w"),), proposals=props(a=0.3, d=0.3), budget=budget)
    )
    assert [c.job_id for c in p.cancels] == ["j1"]


def test_preemption_falls_back_to_admitted_probability() -> None:
    budget = replace(B, max_containers=2, speculative_share=1.0)
    jobs = (job("j1", "r/a", p=0.9), job("j2", "r/d", p=0.2))
    p = plan(make(jobs=jobs, demands=(demand("r/w"),), budget=budget))
    assert [c.job_id for c in p.cancels] == ["j2"]


def test_demand_waits_when_all_slots_hold_demands() -> None:
    budget = replace(B, max_containers=2)
    jobs = (job("j1", "r/a", "demand"), job("j2", "r/d", "demand"))
    p = plan(make(jobs=jobs, demands=(demand("r/w"),), proposals=props(s=0.5), budget=budget))
    assert p.starts == () and p.cancels == ()


def test_demands_are_fifo_and_deduplicated() -> None:
    budget = replace(B, max_containers=2, speculative_share=0.0)
    ds = (
        demand("r/a", at=3.0),
        demand("r/w", at=2.0, rid="second"),
        demand("r/w", at=1.0, rid="first"),
        demand("r/d", at=4.0),
    )
    p = plan(make(demands=ds, budget=budget))
    assert [s.request_id for s in p.starts] == ["first", "r/a"]


def test_demand_for_running_or_ready_key_is_skipped() -> None:
    jobs = (job("j1", "r/a", "demand"),)
    p = plan(
        make(nodes=(node("r"), node("r/w")), jobs=jobs, demands=(demand("r/a"), demand("r/w")))
    )
    assert p.starts == ()


def test_speculative_job_wanted_by_a_demand_is_kept() -> None:
    # The shell should have promoted it (in-flight hit); cancelling it would lose the work.
    jobs = (job("j1", "r/a"),)
    p = plan(make(sessions=(), jobs=jobs, demands=(demand("r/a"),)))
    assert p.cancels == () and p.starts == ()


# ---- parents, cancellation -------------------------------------------------------------


def test_never_starts_a_chunk_whose_parent_is_not_ready() -> None:
    nodes = (node("r"), node("r/w", "running"))
    jobs = (job("j1", "r/w"),)
    proposals = (Proposal("s1", ("w",), 0.8), Proposal("s1", ("w", "d"), 0.6))
    p = plan(make(nodes=nodes, jobs=jobs, demands=(demand("r/w/a"),), proposals=proposals))
    assert p.starts == ()


def test_abandoned_branch_cancelled_when_the_cursor_moves() -> None:
    nodes = (node("r"), node("r/w"), node("r/w/d"))
    jobs = (
        job("j1", "r/a"),
        job("j2", "r/w/d/a"),
        job("j3", "r/w/s/a"),
        job("j0", "r/d", "demand"),
    )
    p = plan(make(nodes=nodes, sessions=(session(cursor="r/w"),), jobs=jobs))
    # r/a left the subtree; r/w/s/a's parent r/w/s is not in the snapshot: unreachable too.
    assert sorted((c.job_id, c.reason) for c in p.cancels) == [
        ("j1", "abandoned"),
        ("j3", "abandoned"),
    ]


def test_subtree_is_limited_to_max_depth() -> None:
    nodes = (node("r"), node("r/w"), node("r/w/d"))
    jobs = (job("j1", "r/w/d/a"),)
    assert plan(make(nodes=nodes, jobs=jobs)).cancels[0].job_id == "j1"
    deeper = replace(B, max_depth=3)
    assert plan(make(nodes=nodes, jobs=jobs, budget=deeper)).cancels == ()


def test_another_active_session_keeps_a_branch_alive() -> None:
    nodes = (node("r"), node("r/w"))
    sessions = (session("s1", cursor="r/w"), session("s2", cursor="r"))
    assert plan(make(nodes=nodes, sessions=sessions, jobs=(job("j1", "r/a"),))).cancels == ()


def test_idle_session_jobs_are_cancelled_as_idle() -> None:
    sessions = (session(active=-500.0),)
    p = plan(make(sessions=sessions, jobs=(job("j1", "r/a"),), proposals=props(w=0.9)))
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "idle")]
    assert p.starts == ()  # and an idle session gets nothing


def test_other_memory_cursor_does_not_keep_a_job() -> None:
    sessions = (session(memory="other"),)
    p = plan(make(sessions=sessions, jobs=(job("j1", "r/a"),)))
    assert [c.reason for c in p.cancels] == ["abandoned"]


def test_over_cap_speculation_is_trimmed_as_budget() -> None:
    budget = replace(B, speculative_share=0.25)  # cap 1
    jobs = (job("j1", "r/a", p=0.2), job("j2", "r/d", p=0.7))
    p = plan(make(jobs=jobs, budget=budget))
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "budget")]


# ---- speculation -----------------------------------------------------------------------


def test_speculation_starts_best_candidates_with_reasons() -> None:
    p = plan(make(proposals=props(w=0.5, a=0.2)))
    assert [s.action for s in p.starts] == ["w", "a"]
    s = p.starts[0]
    assert (s.kind, s.session_id, s.depth, s.expected_gpu_s) == ("speculative", "s1", 1, 10.0)
    assert s.probability == 0.5 and s.benefit_s == pytest.approx(3.5)
    assert s.reason == "spec p=0.50 d=1 saves=3.5s/gpu=0.35" and s.request_id is None
    assert p.bucket.tokens == pytest.approx(980.0)


def test_two_sessions_one_start_with_combined_probability() -> None:
    sessions = (session("s1"), session("s2"))
    proposals = props("s1", w=0.5) + props("s2", w=0.5)
    [s] = plan(make(sessions=sessions, proposals=proposals)).starts
    assert s.probability == pytest.approx(0.75) and s.session_id == "s1"


def test_budget_exhausted_no_speculative_starts() -> None:
    p = plan(make(proposals=props(w=0.5), demands=(demand("r/a"),), tokens=9.0))
    assert [s.kind for s in p.starts] == ["demand"]
    assert p.bucket.tokens == 9.0


def test_budget_pays_for_some_then_stops() -> None:
    p = plan(make(proposals=props(w=0.5, a=0.3, d=0.1), tokens=25.0))
    assert [s.action for s in p.starts] == ["w", "a"]
    assert p.bucket.tokens == pytest.approx(5.0)


def test_refilled_bucket_is_used() -> None:
    inp = replace(
        make(proposals=props(w=0.5), tokens=0.0, now=10.0),
        budget=replace(B, rate_gpu_s_per_s=1.0),
        bucket=BucketState(0.0, 0.0),
    )
    # watch started at 0, now 10: the viewer is due; give them a fresh cursor.
    inp = replace(inp, sessions=(session(watch=10.0, active=10.0),))
    p = plan(inp)
    assert len(p.starts) == 1 and p.bucket == BucketState(0.0, 10.0)


def test_speculative_share_respected() -> None:
    budget = replace(B, max_containers=4, speculative_share=0.5)  # cap 2
    many = props(w=0.3, a=0.2, d=0.2, s=0.1, left=0.1)
    assert len(plan(make(proposals=many, budget=budget)).starts) == 2
    jobs = (job("j1", "r/right"),)
    assert len(plan(make(proposals=many, budget=budget, jobs=jobs)).starts) == 1


def test_free_slots_respected() -> None:
    budget = replace(B, max_containers=3, speculative_share=1.0)
    jobs = (job("j1", "r/right", "demand"), job("j2", "r/up", "demand"))
    p = plan(make(proposals=props(w=0.3, a=0.2), budget=budget, jobs=jobs))
    assert [s.action for s in p.starts] == ["w"]


def test_per_session_cap() -> None:
    budget = replace(B, per_session_inflight=1)
    sessions = (session("s1"), session("s2", cursor="r2", memory="m2"))
    nodes = (node("r"), node("r2", memory="m2"))
    proposals = props("s1", w=0.9, a=0.8) + props("s2", w=0.1)
    p = plan(make(nodes=nodes, sessions=sessions, proposals=proposals, budget=budget))
    assert [(s.session_id, s.action) for s in p.starts] == [("s1", "w"), ("s2", "w")]
    held = (job("j1", "r/d", session="s1"),)
    p = plan(make(nodes=nodes, sessions=sessions, proposals=proposals, budget=budget, jobs=held))
    assert [(s.session_id, s.action) for s in p.starts] == [("s2", "w")]


def test_idle_session_gets_nothing() -> None:
    p = plan(make(sessions=(session(active=-121.0),), proposals=props(w=0.9)))
    assert p.starts == ()


def test_no_speculation_on_a_key_a_demand_waits_for() -> None:
    budget = replace(B, max_containers=1)
    jobs = (job("j1", "r/a", "demand"),)
    p = plan(make(jobs=jobs, demands=(demand("r/w"),), proposals=props(w=0.9), budget=budget))
    assert p.starts == ()


def test_running_job_keys_are_not_restarted() -> None:
    jobs = (job("j1", "r/w"),)
    p = plan(make(jobs=jobs, proposals=props(w=0.9, a=0.5)))
    assert spec_keys(p) == [("r", "a-31")]


def test_preempted_slot_is_not_refilled_by_speculation() -> None:
    budget = replace(B, max_containers=1, speculative_share=1.0)
    jobs = (job("j1", "r/a", p=0.1),)
    p = plan(make(jobs=jobs, demands=(demand("r/w"),), proposals=props(d=0.9), budget=budget))
    assert [s.kind for s in p.starts] == ["demand"] and len(p.cancels) == 1


# ---- determinism -----------------------------------------------------------------------


def big_input() -> PlanInput:
    nodes = (node("r"), node("r/w"), node("r/a"), node("r2", memory="m2"), node("r/w/d", "failed"))
    sessions = (
        session("s1", cursor="r"),
        session("s2", cursor="r/w", watch=1.0),
        session("s3", cursor="r2", memory="m2", watch=0.5),
        session("s4", cursor="r", active=-500.0),
    )
    jobs = (
        job("j1", "r/d", started=1.0, p=0.3),
        job("j2", "r/a/w", session="s1"),
        job("j3", "r/s", "demand", session="s1"),
    )
    proposals = (
        props("s1", w=0.3, a=0.3, d=0.2, s=0.1)
        + props("s2", d=0.5, w_right=0.2)
        + props("s3", w=0.6, a=0.2)
        + props("s4", left=0.9)
        + (Proposal("s1", ("w", "d"), 0.15), Proposal("s2", ("d", "w"), 0.25))
    )
    demands = (demand("r2/a", at=1.0, memory="m2"), demand("r/w/w", at=0.5))
    return make(
        nodes=nodes,
        sessions=sessions,
        jobs=jobs,
        demands=demands,
        proposals=proposals,
        budget=replace(B, max_containers=6),
    )


def test_deterministic_same_input() -> None:
    inp = big_input()
    assert plan(inp) == plan(inp)
    assert plan(inp).starts  # the scenario does something


@pytest.mark.parametrize("seed", range(10))
def test_deterministic_under_shuffled_tuples(seed: int) -> None:
    inp = big_input()
    rnd = random.Random(seed)

    def shuffled(xs: tuple[X, ...]) -> tuple[X, ...]:
        ys = list(xs)
        rnd.shuffle(ys)
        return tuple(ys)

    other = replace(
        inp,
        nodes=shuffled(inp.nodes),
        sessions=shuffled(inp.sessions),
        jobs=shuffled(inp.jobs),
        demands=shuffled(inp.demands),
        proposals=shuffled(inp.proposals),
    )
    assert plan(other) == plan(inp)
