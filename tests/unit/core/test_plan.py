"""plan() (orchestrator.core.plan): hand-built scenarios, and against the plain algorithm."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.core.budget import (
    cold_start_s,
    refill,
    refund,
    speculative_slot_cap,
    try_spend,
    unspent_gpu_s,
)
from orchestrator.core.cursors import Cursors, RosterCursors
from orchestrator.core.frontier import (
    active_by_id,
    active_sessions,
    candidates,
    interests,
    revalue,
    warm_gpu_s,
)
from orchestrator.core.plan import _chains, demand_key, job_key, plan
from orchestrator.core.poses import action_to_pose
from orchestrator.core.roster import Roster
from orchestrator.core.tree import TreeIndex
from orchestrator.core.types import (
    BucketState,
    Budget,
    CancelJob,
    DemandRequest,
    JobKind,
    NodeState,
    Plan,
    PlanInput,
    Proposal,
    RunningJob,
    SessionView,
    StartJob,
    Timing,
    TreeNode,
)
from orchestrator.core.votes import VoteIndex

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
    min_benefit_per_gpu_s=0.0,
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
    assert s.reason == "spec p=0.50 d=1 saves=3.5s waste=3.5gpu-s s/gpu=1.00"
    assert s.request_id is None and not s.cold
    # Each is charged what it runs before the viewer chooses (7 s), not its whole E of 10.
    assert s.charged_gpu_s == pytest.approx(7.0)
    assert p.bucket.tokens == pytest.approx(986.0) and p.bucket_short_gpu_s is None


def test_two_sessions_one_start_with_combined_probability() -> None:
    sessions = (session("s1"), session("s2"))
    proposals = props("s1", w=0.5) + props("s2", w=0.5)
    [s] = plan(make(sessions=sessions, proposals=proposals)).starts
    assert s.probability == pytest.approx(0.75) and s.session_id == "s1"


def test_cold_start_only_when_it_pays() -> None:
    # One warm idle container: the first guess lands on it; the second would boot a container
    # (cold 5 s: ready at 15 instead of 10, needed at 7) and is admitted only if it pays.
    cold_t = replace(T, cold_start_s=5.0)
    base = replace(make(proposals=props(w=0.8, a=0.15)), timing=cold_t, warm_idle=1)
    p = plan(base)
    assert [(s.action, s.cold) for s in p.starts] == [("w", False), ("a", True)]  # threshold 0
    picky = plan(replace(base, budget=replace(B, min_benefit_per_gpu_s=0.1)))
    assert [(s.action, s.cold) for s in picky.starts] == [("w", False)]
    # Unknown warmth (None): every start is warm, the cold start part of E for all alike.
    assert [s.cold for s in plan(replace(base, warm_idle=None)).starts] == [False, False]
    # A demand takes the warm container first: the guess would be cold.
    budget = replace(B, min_benefit_per_gpu_s=0.2)
    dem = plan(replace(base, demands=(demand("r/d"),), budget=budget))
    assert [(s.kind, s.cold) for s in dem.starts] == [("demand", False), ("speculative", True)]
    assert dem.starts[1].expected_gpu_s == 15.0


def test_budget_exhausted_no_speculative_starts() -> None:
    p = plan(make(proposals=props(w=0.5), demands=(demand("r/a"),), tokens=6.0))
    assert [s.kind for s in p.starts] == ["demand"]
    assert p.bucket.tokens == 6.0 and p.bucket_short_gpu_s == pytest.approx(7.0)


def test_budget_pays_for_some_then_stops() -> None:
    p = plan(make(proposals=props(w=0.5, a=0.3, d=0.1), tokens=15.0))
    assert [s.action for s in p.starts] == ["w", "a"]
    assert p.bucket.tokens == pytest.approx(1.0)


def test_refilled_bucket_is_used() -> None:
    inp = replace(
        make(proposals=props(w=0.5), tokens=0.0, now=10.0),
        budget=replace(B, rate_gpu_s_per_s=1.0),
        bucket=BucketState(0.0, 0.0),
    )
    # watch started at 0, now 10: the viewer is due; give them a fresh cursor.
    inp = replace(inp, sessions=(session(watch=10.0, active=10.0),))
    p = plan(inp)
    assert len(p.starts) == 1 and p.bucket == BucketState(3.0, 10.0)


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


# ---- refunds: a cancelled job gives back what it did not run ------------------------------
# Jobs are charged E = 10 GPU-s (``job``); the bucket does not refill (rate 0, burst 1000).


def test_abandoned_job_refunds_its_unspent_charge() -> None:
    nodes = (node("r"), node("r/w"))
    jobs = (job("j1", "r/a", started=1.0),)
    p = plan(make(nodes=nodes, sessions=(session(cursor="r/w"),), jobs=jobs, tokens=100.0, now=5.0))
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "abandoned")]
    assert p.bucket == BucketState(106.0, 5.0)  # ran 4 of 10 s: 6 back


def test_idle_job_refunds_its_unspent_charge() -> None:
    sessions = (session(active=-500.0),)
    p = plan(make(sessions=sessions, jobs=(job("j1", "r/a", started=2.0),), tokens=50.0, now=2.5))
    assert [c.reason for c in p.cancels] == ["idle"]
    assert p.bucket.tokens == 59.5


def test_preempted_job_refunds_its_unspent_charge() -> None:
    budget = replace(B, max_containers=1, speculative_share=1.0)
    jobs = (job("j1", "r/a", started=1.0),)
    p = plan(make(jobs=jobs, demands=(demand("r/w"),), budget=budget, tokens=0.0, now=3.0))
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "preempted")]
    assert [s.kind for s in p.starts] == ["demand"]
    assert p.bucket.tokens == 8.0  # the demand costs nothing; 10 - 2 s run come back


def test_trimmed_job_refunds_its_unspent_charge() -> None:
    budget = replace(B, speculative_share=0.25)  # cap 1
    jobs = (job("j1", "r/a", started=0.0, p=0.2), job("j2", "r/d", started=0.0, p=0.7))
    p = plan(make(jobs=jobs, budget=budget, tokens=0.0, now=7.0))
    assert [(c.job_id, c.reason) for c in p.cancels] == [("j1", "budget")]
    assert p.bucket.tokens == 3.0


def test_refunds_add_up_and_stop_at_burst() -> None:
    nodes = (node("r"), node("r/w"))
    jobs = (job("j1", "r/a", started=4.0), job("j2", "r/d", started=2.0))
    inp = make(nodes=nodes, sessions=(session(cursor="r/w"),), jobs=jobs, tokens=990.0, now=4.0)
    assert plan(replace(inp, bucket=BucketState(980.0, 4.0))).bucket.tokens == 980.0 + 10 + 8
    assert plan(inp).bucket.tokens == 1000.0  # 990 + 10 + 8 capped at burst


def test_a_job_that_overran_its_estimate_refunds_nothing() -> None:
    nodes = (node("r"), node("r/w"))
    jobs = (job("j1", "r/a", started=0.0),)
    p = plan(make(nodes=nodes, sessions=(session(cursor="r/w"),), jobs=jobs, tokens=1.0, now=12.0))
    assert len(p.cancels) == 1 and p.bucket.tokens == 1.0


def test_refund_pays_for_a_better_guess_in_the_same_plan() -> None:
    # 2 tokens cannot pay the 6 s the guess runs before the viewer chooses; the abandoned job
    # (charged its E of 10, ran 1 s) gives 9 back: one start fits.
    nodes = (node("r"), node("r/w"))
    sessions = (session(cursor="r/w", watch=1.0, active=1.0),)
    jobs = (job("j1", "r/a", started=1.0),)
    inp = make(nodes=nodes, sessions=sessions, jobs=jobs, proposals=props(d=0.5), tokens=2.0)
    p = plan(replace(inp, now=2.0, bucket=BucketState(2.0, 2.0)))
    assert [c.reason for c in p.cancels] == ["abandoned"]
    assert spec_keys(p) == [("r/w", "d-31")]
    assert p.bucket.tokens == 5.0  # 2 + 9 - 6
    assert plan(replace(inp, jobs=(), now=2.0, bucket=BucketState(2.0, 2.0))).starts == ()


def test_demand_jobs_are_never_cancelled_nor_refunded() -> None:
    jobs = (job("j1", "r/a", "demand", started=0.0),)
    p = plan(make(sessions=(), jobs=jobs, tokens=10.0, now=1.0))
    assert p.cancels == () and p.bucket.tokens == 10.0


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


# ---- the shortcuts change no decision ---------------------------------------------------
# plan() skips valuing proposals when nothing speculative can start, values only the proposals
# that can name a preemptible job, looks nodes up with filtered scans, and takes candidates and
# victims off heaps. ``reference_plan`` is the documented algorithm written plainly (every
# proposal valued, every list sorted, "least valuable" by a linear scan, full tree indexes): on
# any input the two must return the same Plan.


def reference_plan(inp: PlanInput) -> Plan:
    budget, now = inp.budget, inp.now
    index = TreeIndex(inp.nodes)
    active = active_sessions(inp)
    valued = interests(inp, index, active)
    live = {
        j.job_id: j for j in sorted(inp.jobs, key=lambda j: (j.job_id, j.started_at, j.chunk_id))
    }
    demanded = {demand_key(d) for d in inp.demands}
    bucket = refill(inp.bucket, budget, now)
    cancels: list[CancelJob] = []
    demand_starts: list[StartJob] = []
    spec_starts: list[StartJob] = []

    def cancel(j: RunningJob, reason: str) -> None:
        nonlocal bucket
        del live[j.job_id]
        cancels.append(CancelJob(j.job_id, reason))
        bucket = refund(bucket, budget, unspent_gpu_s(j.charge, j.started_at, now))

    def preemptible() -> list[RunningJob]:
        return [
            j
            for _, j in sorted(live.items())
            if j.kind == "speculative" and job_key(j) not in demanded
        ]

    def least_valuable() -> RunningJob | None:
        def value(j: RunningJob) -> tuple[float, float, str]:
            c = valued.get(job_key(j))
            return (c.probability if c is not None else j.probability, -j.started_at, j.job_id)

        jobs = preemptible()
        return min(jobs, key=value) if jobs else None

    def reachable(j: RunningJob, sessions: Iterable[SessionView]) -> bool:
        chain, current = [j.chunk_id], j.parent_id
        for _ in range(budget.max_depth):
            if current is None:
                break
            chain.append(current)
            n = index.node(current)
            current = n.parent_id if n is not None else None
        cursors = {s.cursor_chunk_id for s in sessions if s.memory_id == j.memory_id}
        return any(c in cursors for c in chain)

    active_ids = {s.session_id for s in active}
    idle = [s for s in inp.sessions if s.session_id not in active_ids]
    for j in preemptible():
        if not reachable(j, active):
            cancel(j, "idle" if reachable(j, idle) else "abandoned")
    cap = speculative_slot_cap(budget)
    while len(preemptible()) > cap or len(live) > budget.max_containers:
        victim = least_valuable()
        if victim is None:
            break
        cancel(victim, "budget")

    def free() -> int:
        return budget.max_containers - len(live) - len(demand_starts) - len(spec_starts)

    running, seen = {job_key(j) for j in inp.jobs}, set()
    for d in sorted(inp.demands, key=lambda d: (d.requested_at, d.request_id)):
        key = demand_key(d)
        if key in seen or key in running:
            continue
        seen.add(key)
        node = index.by_key(*key)
        if node is not None and node.state == "ready":
            continue
        if d.parent_id is not None and not index.is_ready(d.parent_id):
            continue
        reason = "demand"
        if free() <= 0:
            victim = least_valuable()
            if victim is None:
                break
            cancel(victim, "preempted")
            reason = f"demand (preempted job {victim.job_id})"
        e = warm_gpu_s(inp)
        cold = cold_start_s(inp.warm_idle, len(demand_starts), inp.timing.cold_start_s)
        demand_starts.append(
            StartJob(
                d.memory_id,
                d.parent_id,
                d.pose,
                d.action,
                "demand",
                d.session_id,
                1.0,
                0,
                e + cold,
                0.0,
                reason,
                d.request_id,
                cold=cold > 0.0,
            )
        )
    held: dict[str | None, int] = {}
    for j in live.values():
        if j.kind == "speculative" and j.session_id is not None:
            held[j.session_id] = held.get(j.session_id, 0) + 1
    spec = sum(j.kind == "speculative" for j in live.values())
    short: float | None = None
    # An empty bucket starts nothing (every candidate that saves wait has a positive charge).
    for c in candidates(inp, index, valued, running | demanded) if bucket.tokens > 0.0 else ():
        if free() <= 0 or spec + len(spec_starts) >= cap:
            break
        if held.get(c.session_id, 0) >= budget.per_session_inflight:
            continue
        before = len(demand_starts) + len(spec_starts)
        cold = cold_start_s(inp.warm_idle, before, inp.timing.cold_start_s)
        if cold > 0.0:
            c = revalue(c, inp, cold)
            if not c.score > budget.min_benefit_per_gpu_s:
                continue
        paid = try_spend(bucket, c.charge_gpu_s)
        if paid is None:
            short = c.charge_gpu_s if short is None else min(short, c.charge_gpu_s)
            continue
        bucket, held[c.session_id] = paid, held.get(c.session_id, 0) + 1
        reason = (
            f"spec p={c.probability:.2f} d={c.depth} saves={c.benefit_s:.1f}s "
            f"waste={c.waste_gpu_s:.1f}gpu-s s/gpu={c.score:.2f}" + (" cold" if cold else "")
        )
        spec_starts.append(
            StartJob(
                c.memory_id,
                c.parent_id,
                c.pose,
                c.action,
                "speculative",
                c.session_id,
                c.probability,
                c.depth,
                c.expected_gpu_s,
                c.benefit_s,
                reason,
                charged_gpu_s=c.charge_gpu_s,
                cold=cold > 0.0,
            )
        )
    return Plan(
        starts=(*demand_starts, *spec_starts), cancels=tuple(cancels), bucket=bucket,
        bucket_short_gpu_s=short,
    )  # fmt: skip


RANDOM_ACTS = ("w", "a", "d", "w+right", "left")


def random_input(rnd: random.Random) -> PlanInput:
    """A random world: trees in two memories (some duplicated ids and keys, missing parents),
    sessions (some idle, some duplicated, some sharing a cursor), speculative and demand jobs
    (on proposed keys or not), demands, proposals (some deep, invalid, non-finite), budgets."""
    now = rnd.choice((10.0, 20.0))
    nodes: dict[str, TreeNode] = {}
    extra: list[TreeNode] = []
    for mem in ("m1", "m2"):
        root = f"{mem}:r"
        nodes[root] = TreeNode(root, mem, None, pose("w"), "w", "ready", 0, 0.0)
        for _ in range(rnd.randint(0, 12)):
            parent = rnd.choice([c for c, n in nodes.items() if n.state == "ready"])
            a = rnd.choice(RANDOM_ACTS)
            cid = f"{parent}/{a}"
            if cid not in nodes:
                state: NodeState = rnd.choice(("ready",) * 5 + ("running", "failed"))
                nodes[cid] = TreeNode(cid, nodes[parent].memory_id, parent, pose(a), a, state, 1)
    if rnd.random() < 0.2:  # a duplicated id (another state) and a duplicated key (another id)
        n = rnd.choice(list(nodes.values()))
        extra.append(replace(n, state=rnd.choice(("ready", "running", "failed"))))
        extra.append(replace(n, chunk_id=n.chunk_id + "#2", state="failed"))
    if rnd.random() < 0.2:  # a chunk whose parent is missing from the snapshot
        extra.append(TreeNode("m1:ghost/w", "m1", "m1:ghost", pose("w"), "w", "ready", 1))
    ready = [c for c, n in nodes.items() if n.state == "ready"] + ["m1:ghost/w"] * (len(extra) > 1)
    sessions = []
    for i in range(rnd.randint(1, 6)):
        cur = rnd.choice(ready)
        memory = "m1" if cur.startswith("m1") else "m2"
        if rnd.random() < 0.05:
            memory = "m3"  # a cursor on another memory's chunk keeps nothing alive
        sessions.append(
            SessionView(
                f"s{i}",
                memory,
                cur,
                now - rnd.choice((0.0, 1.0, 3.0, 6.0)),
                now - rnd.choice((0.0, 0.0, 5.0, 200.0)),
                think_s=rnd.choice((None, None, 0.5, 4.0, 30.0)),
                idle_after_s=rnd.choice((None, None, 4.0, 40.0)),
            )
        )
    if rnd.random() < 0.15:
        s = rnd.choice(sessions)
        sessions.append(replace(s, cursor_chunk_id=rnd.choice(ready), last_active_at=now - 300.0))
    if rnd.random() < 0.15:
        s = rnd.choice(sessions)
        sessions.append(replace(s, session_id="s9"))  # two viewers, one cursor
    jobs = []
    for _ in range(rnd.randint(0, 8)):
        parent = rnd.choice(ready)
        a = rnd.choice(RANDOM_ACTS)
        cid = f"{parent}/{a}"
        if cid in nodes and nodes[cid].state != "failed":
            continue
        memory = "m1" if parent.startswith("m1") else "m2"
        nodes[cid] = TreeNode(cid, memory, parent, pose(a), a, "running", 2)
        kind: JobKind = rnd.choice(("speculative", "speculative", "speculative", "demand"))
        jobs.append(
            RunningJob(
                f"j{rnd.randint(0, 20):02d}",
                cid,
                memory,
                parent,
                pose(a),
                kind,
                now - rnd.choice((0.0, 2.0, 5.0, 15.0)),
                rnd.choice((10.0, 13.0)),
                rnd.choice((0.1, 0.3, 0.5)),
                rnd.choice([s.session_id for s in sessions] + [None]),
                1,
                rnd.choice((None, 0.0, 3.0, 7.0)),
            )
        )
    demands = []
    for i in range(rnd.randint(0, 4)):
        under: str | None = rnd.choice([*nodes, None])
        a = rnd.choice(RANDOM_ACTS)
        memory = "m2" if under is not None and under.startswith("m2") else "m1"
        demands.append(
            DemandRequest(f"r{i}", memory, under, pose(a), a, "s0", now - rnd.choice((0.0, 1.0)))
        )
    proposals = []
    for s in sessions:
        for _ in range(rnd.randint(0, 6)):
            path = tuple(rnd.choice(RANDOM_ACTS) for _ in range(rnd.choice((1, 1, 2, 2, 3))))
            prob = rnd.choice((0.02, 0.06, 0.1, 0.3, 0.5, 0.7, 0.9, 1.2, -0.1))
            proposals.append(Proposal(s.session_id, path, prob))
    if rnd.random() < 0.2:
        proposals += [
            Proposal("s0", ("jump",), 0.9),
            Proposal("s0", (), 0.9),
            Proposal("s0", ("w",), float("nan")),
            Proposal("ghost", ("w",), 0.9),
        ]
    slots = rnd.choice((len(jobs), len(jobs) + 1, rnd.randint(1, 8)))  # often full
    budget = Budget(
        max_containers=max(1, slots),
        speculative_share=rnd.choice((0.25, 0.5, 0.75, 1.0)),
        rate_gpu_s_per_s=rnd.choice((0.0, 1.0)),
        burst_gpu_s=rnd.choice((15.0, 40.0, 1000.0)),
        max_depth=rnd.choice((1, 2, 2, 3)),
        per_session_inflight=rnd.randint(1, 3),
        min_probability=0.05,
        idle_timeout_s=120.0,
        min_benefit_per_gpu_s=rnd.choice((0.0, 0.0, 0.1, 0.25, 1.0)),
    )
    timing = Timing(rnd.choice((8.0, 10.0)), rnd.choice((0.0, 2.0)), 5.0, rnd.choice((2.0, 10.0)))
    all_nodes = [*nodes.values(), *extra]
    rnd.shuffle(all_nodes)
    return PlanInput(
        now,
        tuple(all_nodes),
        tuple(sessions),
        tuple(jobs),
        tuple(demands),
        tuple(proposals),
        budget,
        BucketState(rnd.choice((0.0, 9.0, 25.0, 40.0)), now - 5.0),
        timing,
        warm_idle=rnd.choice((None, None, 0, 1, 3)),
    )


@settings(max_examples=400, deadline=None)
@given(st.randoms(use_true_random=False))
def test_plan_equals_the_plain_algorithm(rnd: random.Random) -> None:
    inp = random_input(rnd)
    p = plan(inp)
    assert p == reference_plan(inp)
    for what in sorted({s.kind for s in p.starts} | {c.reason for c in p.cancels}):
        event(what)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_plan_with_a_vote_index_equals_the_plain_algorithm(rnd: random.Random) -> None:
    """The shell's pre-resolved votes (``PlanInput.votes``) change no decision."""
    inp = random_input(rnd)
    tree = TreeIndex(inp.nodes)
    votes = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    assert plan(replace(inp, votes=votes)) == reference_plan(inp)


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_plan_with_a_vote_index_preempts_from_a_short_heap(rnd: random.Random) -> None:
    """Many reachable speculative jobs on a full pool, few demands: the index's victims come
    from a heap of only the jobs the plan can take off it (``VoteIndex.victims(first=...)``,
    ties in P broken by start time and id); the plan is the same."""
    actions = ("w", "a", "d", "s", "left", "right", "w+left", "w+right", "a+left", "d+right")
    cursors = ("r", "r/w", "r/a")
    sessions = tuple(session(f"s{i}", c) for i, c in enumerate(cursors))  # all reachable
    jobs = []
    for i, (c, a) in enumerate(rnd.sample([(c, a) for c in cursors for a in actions[:8]], 20)):
        jobs.append(
            job(
                f"j{i:02d}",
                f"{c}/{a}",
                started=rnd.choice((0.0, 1.0, 2.0)),
                p=rnd.choice((0.1, 0.3)),
                session=rnd.choice(sessions).session_id,
            )
        )
    proposals = tuple(
        Proposal(s.session_id, (j.chunk_id.rsplit("/", 1)[1],), rnd.choice((0.2, 0.4, 0.6)))
        for s in sessions for j in jobs
        if j.parent_id == s.cursor_chunk_id and rnd.random() < 0.5
    )  # fmt: skip
    demands = tuple(
        demand(f"{c}/{a}", at=float(i))
        for i, (c, a) in enumerate(
            rnd.sample([(c, a) for c in cursors for a in actions[8:]], rnd.randint(1, 3))
        )
    )
    budget = replace(B, max_containers=len(jobs) + rnd.choice((0, 0, 1)), speculative_share=1.0)
    nodes = tuple(node(c) for c in cursors)
    inp = make(nodes=nodes, sessions=sessions, jobs=tuple(jobs), demands=demands,
               proposals=proposals, budget=budget, now=3.0)  # fmt: skip
    tree = TreeIndex(inp.nodes)
    votes = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    p = plan(replace(inp, votes=votes))
    assert p == reference_plan(inp)
    assert sum(c.reason == "preempted" for c in p.cancels) >= len(demands) - 1


class _SnapshotLookup:
    """``tree.NodeLookup`` over a ``TreeIndex`` (the winners of duplicated ids and keys)."""

    def __init__(self, index: TreeIndex) -> None:
        self.index = index

    def node(self, chunk_id: str) -> TreeNode | None:
        return self.index.node(chunk_id)

    def by_key(self, key: tuple[str, str | None, str]) -> TreeNode | None:
        return self.index.by_key(*key)


def unique_input(inp: PlanInput) -> PlanInput:
    """``inp`` with the sessions and jobs the planner keeps of duplicated ids (the most
    recently active session; the last job in (job_id, started_at, chunk_id) order) and the
    nodes a ``TreeIndex`` keeps: what a shell that keeps a ``Roster`` and lookups hands over."""
    sessions: dict[str, SessionView] = {}
    for s in sorted(
        inp.sessions,
        key=lambda s: (s.session_id, s.last_active_at, s.watch_started_at, s.cursor_chunk_id),
    ):
        sessions[s.session_id] = s
    jobs = {j.job_id: j for j in sorted(inp.jobs, key=lambda j: (j.job_id, j.started_at,
                                                                 j.chunk_id))}  # fmt: skip
    nodes = tuple(TreeIndex(inp.nodes).key_index().values())
    return replace(inp, sessions=tuple(sessions.values()), jobs=tuple(jobs.values()),
                   nodes=nodes)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.booleans())
def test_plan_with_lookups_and_a_roster_equals_the_plain_algorithm(
    rnd: random.Random, with_votes: bool
) -> None:
    """The shell's node lookups (``PlanInput.lookup``) and roster (``PlanInput.roster``), with
    or without a vote index, change no decision."""
    inp = unique_input(random_input(rnd))
    tree = TreeIndex(inp.nodes)
    roster = Roster.of(inp)
    assert roster.matches(inp)
    fast = replace(inp, lookup=_SnapshotLookup(tree), roster=roster)
    if with_votes:
        fast = replace(fast, votes=VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k)))
    want = reference_plan(inp)
    assert plan(fast) == want
    assert plan(replace(fast, lookup=None)) == want
    assert plan(replace(fast, roster=None)) == want


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_near_is_survey_on_the_first_two_links(rnd: random.Random) -> None:
    """``Cursors.near`` (the planner's shortcut with a vote index) answers True only where
    ``survey`` over the job's whole ancestry does, and exactly as ``survey`` over the job's
    chunk and parent."""
    inp = random_input(rnd)
    tree = TreeIndex(inp.nodes)
    active = active_by_id(inp)
    cursors = Cursors(list(active.values()))
    depth = inp.budget.max_depth
    jobs = list({j.job_id: j for j in inp.jobs}.values())  # ids unique, as in the planner's pool
    chains = _chains(tree, jobs, depth)
    for j in jobs:
        near = cursors.near(j, depth)
        assert near == cursors.survey(j, chains[j.job_id][:1], set())
        if near:
            assert cursors.survey(j, chains[j.job_id], set())
    assert cursors.far(jobs, depth) == [j for j in jobs if not cursors.near(j, depth)]
    roster = Roster.of(unique_input(inp))
    for active_only in (True, False):
        on = RosterCursors(roster, inp.now, inp.budget, active_only)
        assert on.far(jobs, depth) == [j for j in jobs if not on.near(j, depth)]


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_reaches_is_survey_without_want(rnd: random.Random) -> None:
    """``reaches`` (step b with a vote index, and the idle test of every cancel) answers as
    ``survey`` over the same chunks, for ``Cursors`` and ``RosterCursors`` (active or idle
    sessions), and a far job is reachable exactly when an ancestor above its parent is watched."""
    inp = unique_input(random_input(rnd))
    tree = TreeIndex(inp.nodes)
    active = active_by_id(inp)
    depth = inp.budget.max_depth
    jobs = list(inp.jobs)
    chains = _chains(tree, jobs, depth)
    roster = Roster.of(inp)
    ways: list[Cursors | RosterCursors] = [
        Cursors(list(active.values())),
        Cursors([s for s in inp.sessions if s.session_id not in active]),
        RosterCursors(roster, inp.now, inp.budget, True),
        RosterCursors(roster, inp.now, inp.budget, False),
    ]
    for cursors in ways:
        for j in jobs:
            chain = chains[j.job_id]
            whole = cursors.survey(j, chain, set())
            assert cursors.reaches(j, (j.chunk_id, *chain)) == whole
            if not cursors.near(j, depth):
                assert cursors.reaches(j, chain[1:]) == whole
