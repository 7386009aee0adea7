"""``prepare`` looks only at what moved (``orchestrator.live.upkeep``), scenario by scenario.

Each scenario moves one thing the dirty tracking must notice with nothing else moving (an idle
deadline passing, the speculation gate, a peer's steps, time going backwards, an ended session
going quiet) and checks the input equals the one ``prepare(full=True)`` makes by visiting
everything. Then the two structures it rests on: ``Deadlines`` and ``NodeCounts``.
"""

from __future__ import annotations

import itertools

from orchestrator.core.plan import plan
from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import Budget, PlanInput, Timing
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.live.tree import KnownNode
from orchestrator.live.upkeep import Deadlines, NodeCounts
from policies import make_policy

ROOT = str(action_to_pose("w"))
BUDGET = Budget(
    max_containers=4, speculative_share=0.75, rate_gpu_s_per_s=1.0, burst_gpu_s=40.0,
    max_depth=2, per_session_inflight=2, min_probability=0.05, idle_timeout_s=30.0,
    min_benefit_per_gpu_s=0.0, gone_after_gaps=1.5,
)  # fmt: skip
TIMING = Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0)


def _live(policy: str = "uniform", *, cached: bool | None = None) -> LiveState:
    ids = itertools.count()
    return LiveState(
        budget=BUDGET, timing=TIMING, frames=125,
        proposer=SinglePolicy(make_policy(policy), cache=cached),
        new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}",
        new_job_id=lambda: f"j{next(ids)}", evict_after_s=200.0,
    )  # fmt: skip


def _watching(live: LiveState, sid: str, memory: str = "m1", now: float = 0.0) -> None:
    """A session on ``memory`` whose cursor (the root) is ready, nothing running."""
    if not live.has_memory(memory):
        live.load_memory(memory)
    live.open_session(sid, memory, f"{memory}:None/{ROOT}", policy="p", arm="p", now=now)
    live.request(memory, None, ROOT, None, request_id=f"r-{sid}", session_id=sid, now=now,
                 record_history=False)  # fmt: skip
    job = live.job(f"{memory}:None/{ROOT}")
    if job is None:
        live.schedule(now)
        job = live.job(f"{memory}:None/{ROOT}")
    if job is not None:
        live.job_ended(job.job_id, job.chunk_id, memory, ok=True, now=now)


def _same_as_full(live: LiveState, now: float) -> PlanInput:
    """prepare(now), checked against prepare(now, full=True) made right after it."""
    inp = live.prepare(now)
    assert inp.votes is not None
    votes, wake, asked = inp.votes.contents(), live.next_wake(), live.proposals.asked
    again = live.prepare(now, full=True)
    assert inp.votes.contents() == votes
    assert set(again.nodes) == set(inp.nodes) and len(again.nodes) == len(inp.nodes)
    assert (again.sessions, again.proposals, again.jobs, again.demands) == (
        inp.sessions, inp.proposals, inp.jobs, inp.demands,
    )  # fmt: skip
    assert live.next_wake() == wake
    assert live.proposals.asked == asked  # time-free: nothing was left to ask
    assert plan(again) == plan(inp)
    return inp


def test_an_idle_deadline_passing_alone_drops_the_proposals() -> None:
    live = _live()
    _watching(live, "s0")
    assert _same_as_full(live, 1.0).proposals  # watching: it proposes
    deadline = live.next_wake()
    assert deadline < 60.0  # its gone time (about 1.5 gaps of 15 s)
    assert not _same_as_full(live, deadline + 1.0).proposals  # nothing moved but the clock
    assert live.next_wake() == float("inf")


def test_the_speculation_gate_is_asked_again_each_plan() -> None:
    live = _live()
    blocked: set[str] = set()
    live.speculation_allowed = lambda sid: sid not in blocked
    _watching(live, "s0")
    _watching(live, "s1")
    assert {p.session_id for p in _same_as_full(live, 1.0).proposals} == {"s0", "s1"}
    blocked.add("s0")  # only the gate knows
    assert {p.session_id for p in _same_as_full(live, 2.0).proposals} == {"s1"}
    blocked.clear()
    assert {p.session_id for p in _same_as_full(live, 3.0).proposals} == {"s0", "s1"}


def _step(live: LiveState, sid: str, now: float) -> str:
    """``sid`` steps forward ("w"); a miss is generated at once. Returns the outcome."""
    s = live.session(sid)
    assert s is not None
    res = live.request("m1", s.view.cursor_chunk_id, str(action_to_pose("w")), "w",
                       request_id=f"r{now}{sid}", session_id=sid, now=now)  # fmt: skip
    job = live.job(res.chunk_id)
    if job is None and res.outcome != "hit":
        live.schedule(now)
        job = live.job(res.chunk_id)
    if job is not None:
        live.job_ended(job.job_id, job.chunk_id, "m1", ok=True, now=now)
    return res.outcome


def test_peers_steps_renew_proposals_in_coarse_steps() -> None:
    live = _live("markov")
    for i in range(3):
        _watching(live, f"s{i}")
    for step in range(12):  # s0 walks ahead, making the chunks
        _step(live, "s0", 1.0 + step * 0.1)
    _same_as_full(live, 3.0)
    # s1 walks after it on ready chunks: the tree does not move, the memory's epoch does, so
    # s2 (and s0) are renewed only when it moves a coarse step; the full visit checks when.
    asked = live.proposals.asked
    for step in range(12):
        assert _step(live, "s1", 3.0 + step * 0.1) == "hit"
        _same_as_full(live, 3.05 + step * 0.1)
    assert live.proposals.asked - asked > 12  # more than s1's own renewals


def test_time_going_backwards_is_planned_as_from_scratch() -> None:
    live = _live()
    _watching(live, "s0")
    assert not _same_as_full(live, 100.0).proposals  # idle by then
    assert _same_as_full(live, 1.0).proposals  # an earlier clock: active again


def test_a_session_that_left_is_evicted_once_quiet_with_nothing_else_moving() -> None:
    live = _live()
    _watching(live, "s0")
    _watching(live, "s1", memory="m2")
    _same_as_full(live, 1.0)
    live.close_session("s0")
    _same_as_full(live, 2.0)
    assert live.session("s0") is not None  # quiet for less than idle_timeout_s
    _same_as_full(live, 31.5)
    assert live.session("s0") is None
    # Its memory goes with its last session, unless a job still runs there.
    assert live.has_memory("m1") == any(j.memory_id == "m1" for j in live.running())
    assert live.session("s1") is not None and live.has_memory("m2")  # not ended, not 200 s
    _same_as_full(live, 250.0)
    assert live.session("s1") is None
    for job in list(live.running()):
        live.job_ended(job.job_id, job.chunk_id, job.memory_id, ok=False, now=250.0)
    _same_as_full(live, 251.0)
    assert live.size()["memories"] == 0
    assert live.memories_evicted == 2  # counted for shells that keep books per memory


def test_an_operator_policy_is_asked_every_plan() -> None:
    live = _live(cached=False)  # as if it read the time
    _watching(live, "s0")
    live.prepare(1.0)
    before = live.proposals.asked
    live.prepare(2.0)
    assert live.proposals.asked == before + 1


def test_deadlines_skip_stale_entries_and_stay_small() -> None:
    d = Deadlines()
    a, b = object(), object()
    d.set("s", 5.0, a)
    d.set("s", 7.0, b)  # the first entry is stale now
    d.set("t", 6.0, a)
    assert d.first() == 6.0
    assert d.due(6.5) == [(6.0, "t", a)]
    d.forget("s")
    assert d.first() == float("inf")
    for i in range(1000):
        d.set("u", float(i), object())
    assert len(d) <= 2 * len(d.stamp) + 65
    assert [e[0] for e in d.due(2000.0)] == [999.0]


def _node(cid: str, state: str = "ready", parent: str | None = None) -> KnownNode:
    return KnownNode(cid, "m", parent, f"p{cid}", None, state, 0 if parent is None else 1)  # type: ignore[arg-type]


def test_node_counts_give_each_held_chunk_once_in_its_current_state() -> None:
    counts = NodeCounts()
    r, c = _node("r"), _node("c", "pending", "r")
    counts.swap((), (r, c))
    counts.swap((), (r,))
    assert counts.nodes() == (r.core,) and counts.held() == 2  # pending: held, not given
    running = _node("c", "running", "r")
    counts.swap((r, c), (r, running))  # the chunk moved on: the current node is given
    assert set(counts.nodes()) == {r.core, running.core}
    counts.swap((r, running), ())
    assert counts.nodes() == (r.core,)  # the other holder still holds the root
    counts.swap((r,), ())
    assert counts.nodes() == () and counts.held() == 0
